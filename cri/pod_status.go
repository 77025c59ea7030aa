package cri

import (
	"context"
	"encoding/json"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

func (s *RuntimeServer) PodSandboxStatus(ctx context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	id := r.GetPodSandboxId()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod_sandbox_id", "must be set")
	}
	rec, ok := s.pods.Find(id)
	if !ok {
		return nil, errdefs.NotFound("pod sandbox", id)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: s.podStatus(rec)}
	for _, c := range s.podContainers(rec.ID) {
		resp.ContainersStatuses = append(resp.ContainersStatuses, s.containerStatus(c))
	}
	if r.GetVerbose() {
		info := map[string]any{"pid": 0, "runtimeHandler": rec.RuntimeHandler, "config": rec.Config}
		if pod := s.sandboxPod(rec.ID); pod != nil {
			info["dir"] = pod.Dir()
			info["netns"] = pod.NetNSPath()
			info["cgroupParent"] = pod.CgroupParent()
			if m := pod.Monitor(); m != nil {
				info["pausePid"] = m.PausePid()
			}
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, fmt.Errorf("pod %s verbose info: %w", id, err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

func (s *RuntimeServer) podStatus(rec podRecord) *runtimeapi.PodSandboxStatus {
	return s.podStatusIn(rec, rec.State)
}

// podStatusIn is the status of the pod as if it were in state (an event's, which may be past).
func (s *RuntimeServer) podStatusIn(rec podRecord, state podState) *runtimeapi.PodSandboxStatus {
	cfg := rec.Config
	st := &runtimeapi.PodSandboxStatus{
		Id:             rec.ID,
		Metadata:       cfg.GetMetadata(),
		State:          podStateCRI(state),
		CreatedAt:      rec.CreatedAt,
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: rec.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
	}
	if len(rec.IPs) > 0 && state == podReady {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: rec.IPs[0]}
		for _, ip := range rec.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}

func podStateCRI(s podState) runtimeapi.PodSandboxState {
	if s == podReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func (s *RuntimeServer) sandboxPod(id string) PodRuntime {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sandbox[id]
}
