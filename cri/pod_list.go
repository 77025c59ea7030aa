package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *RuntimeServer) ListPodSandbox(ctx context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: s.listPods(r.GetFilter())}, nil
}

func (s *RuntimeServer) StreamPodSandboxes(r *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	for _, p := range s.listPods(r.GetFilter()) {
		if err := stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: []*runtimeapi.PodSandbox{p}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *RuntimeServer) listPods(f *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	var out []*runtimeapi.PodSandbox
	for _, rec := range s.pods.List() {
		if rec.State == podCreating {
			continue // not visible until RunPodSandbox returned it
		}
		state := podStateCRI(rec.State)
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(rec.ID, f.GetId()) {
				continue
			}
			if f.GetState() != nil && f.GetState().GetState() != state {
				continue
			}
			if !matchLabels(rec.Config.GetLabels(), f.GetLabelSelector()) {
				continue
			}
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: rec.ID, Metadata: rec.Config.GetMetadata(), State: state, CreatedAt: rec.CreatedAt,
			Labels: rec.Config.GetLabels(), Annotations: rec.Config.GetAnnotations(), RuntimeHandler: rec.RuntimeHandler,
		})
	}
	return out
}

// matchLabels says whether labels has every key=value of selector.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
