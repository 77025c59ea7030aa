//go:build integration

package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A kubelet that times out on RunPodSandbox/CreateContainer retries with the same names: the retry gets the object
// the first call made (finished in the background), not a "name is reserved" error, and only one object exists.
// Once a caller got it, another create with the same name is AlreadyExists.
func TestSlowCallRetry(t *testing.T) {
	d := newPodDaemon(t)
	rt, _ := d.startWithTestImage(t)
	pc := podConfig(d.dir, "slow")
	short, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	_, err := rt.RunPodSandbox(short, &runtimeapi.RunPodSandboxRequest{Config: pc})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("RunPodSandbox with a 5ms deadline = %v, want DeadlineExceeded", err)
	}
	pod, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	t.Cleanup(func() {
		rt.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
	})
	pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != pod.PodSandboxId {
		t.Fatalf("pods after the retry = %v (%v), want just %s", pods.GetItems(), err, pod.PodSandboxId)
	}
	if _, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("third RunPodSandbox = %v, want AlreadyExists", err)
	}

	req := &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: containerConfig("slow", "sleep", "100"), SandboxConfig: pc}
	short, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
	_, err = rt.CreateContainer(short, req)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("CreateContainer with a 5ms deadline = %v, want DeadlineExceeded", err)
	}
	c, err := rt.CreateContainer(ctx(t), req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	ctrs, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil || len(ctrs.Containers) != 1 || ctrs.Containers[0].Id != c.ContainerId {
		t.Fatalf("containers after the retry = %v (%v), want just %s", ctrs.GetContainers(), err, c.ContainerId)
	}
	if _, err := rt.CreateContainer(ctx(t), req); status.Code(err) != codes.AlreadyExists {
		t.Errorf("third CreateContainer = %v, want AlreadyExists", err)
	}
}
