package cri

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestLockWaitsHonourDeadline: a call that waits for a pod or container lock another call holds returns
// DeadlineExceeded once its own deadline passes, instead of queueing until the holder is done.
func TestLockWaitsHonourDeadline(t *testing.T) {
	s, err := NewRuntimeServer(RuntimeOptions{RootDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.pods.Create("p1", podRecord{ID: "p1", State: podReady, Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.containers.Create("c1", containerRecord{ID: "c1", PodID: "p1", State: ctrCreated,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}}}); err != nil {
		t.Fatal(err)
	}
	// Held to the end: a call that wrongly waits stays blocked rather than running on a server with no runtimes.
	must(s.podLocks.Lock(context.Background(), "p1"))
	must(s.ctrLocks.Lock(context.Background(), "c1"))

	for name, call := range map[string]func(context.Context) error{
		"StartContainer": func(ctx context.Context) error {
			_, err := s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: "c1"})
			return err
		},
		"StopContainer": func(ctx context.Context) error {
			_, err := s.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: "c1"})
			return err
		},
		"RemoveContainer": func(ctx context.Context) error {
			_, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: "c1"})
			return err
		},
		"StopPodSandbox": func(ctx context.Context) error {
			_, err := s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "p1"})
			return err
		},
		"RemovePodSandbox": func(ctx context.Context) error {
			_, err := s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "p1"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- call(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s while the lock is held = %v, want DeadlineExceeded", name, err)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("%s still waits for the lock 2s after its deadline", name)
			}
		})
	}
}
