package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

func (s *RuntimeServer) ContainerStatus(ctx context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	id := r.GetContainerId()
	if id == "" {
		return nil, errdefs.InvalidArgument("container_id", "must be set")
	}
	rec, ok := s.containers.Find(id)
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: s.containerStatus(rec)}
	if r.GetVerbose() {
		info := map[string]any{"pid": 0, "sandboxID": rec.PodID, "bundle": rec.Bundle, "config": rec.Config}
		if c, err := s.opts.Containers.Load(rec.ID); err == nil {
			info["pid"] = c.Pid()
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, fmt.Errorf("container %s verbose info: %w", id, err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

func (s *RuntimeServer) containerStatus(rec containerRecord) *runtimeapi.ContainerStatus {
	cfg := rec.Config
	st := &runtimeapi.ContainerStatus{
		Id:          rec.ID,
		Metadata:    cfg.GetMetadata(),
		State:       containerStateCRI(rec.State),
		CreatedAt:   rec.CreatedAt,
		StartedAt:   rec.StartedAt,
		FinishedAt:  rec.FinishedAt,
		ExitCode:    rec.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: rec.ImageName, UserSpecifiedImage: cfg.GetImage().GetUserSpecifiedImage()},
		ImageRef:    rec.ImageID,
		ImageId:     rec.ImageID,
		Reason:      rec.Reason,
		Message:     rec.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      statusMounts(rec),
		LogPath:     rec.LogPath,
		User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: rec.UID, Gid: rec.GID, SupplementalGroups: rec.AdditionalGIDs}},
	}
	if res := cfg.GetLinux().GetResources(); res != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: res}
	}
	if sig, err := parseSignal(rec.StopSignal); err == nil && rec.StopSignal != "" {
		if v, ok := runtimeapi.Signal_value["SIGNAL_"+unix.SignalName(sig)]; ok {
			st.StopSignal = runtimeapi.Signal(v)
		}
	}
	return st
}

func containerStateCRI(s containerState) runtimeapi.ContainerState {
	switch s {
	case ctrCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case ctrRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case ctrExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func (s *RuntimeServer) ListContainers(ctx context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: s.listContainers(r.GetFilter())}, nil
}

func (s *RuntimeServer) StreamContainers(r *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	return stream.Send(&runtimeapi.StreamContainersResponse{Containers: s.listContainers(r.GetFilter())})
}

func (s *RuntimeServer) listContainers(f *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for _, rec := range s.containers.List() {
		if rec.State == ctrCreating {
			continue
		}
		state := containerStateCRI(rec.State)
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(rec.ID, f.GetId()) ||
				f.GetPodSandboxId() != "" && !strings.HasPrefix(rec.PodID, f.GetPodSandboxId()) ||
				f.GetState() != nil && f.GetState().GetState() != state ||
				!matchLabels(rec.Config.GetLabels(), f.GetLabelSelector()) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id: rec.ID, PodSandboxId: rec.PodID, Metadata: rec.Config.GetMetadata(),
			Image:    &runtimeapi.ImageSpec{Image: rec.ImageName, UserSpecifiedImage: rec.Config.GetImage().GetUserSpecifiedImage()},
			ImageRef: rec.ImageID, ImageId: rec.ImageID, State: state, CreatedAt: rec.CreatedAt,
			Labels: rec.Config.GetLabels(), Annotations: rec.Config.GetAnnotations(),
		})
	}
	return out
}
