//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A kubelet that times out on RunPodSandbox/CreateContainer retries with the same names: the retry gets the object
// the first call made (finished in the background), not a "name is reserved" error, and only one object exists.
// Once a caller got it, another create with the same name is AlreadyExists.
//
// Each first call is held where it does its work until the test lets it go, so it surely reached berthd and surely
// ends before its work: the pod in its CNI ADD (testdata/cni-gate holds the ADD of pods named "hold" while the gate
// file hold-add exists), the container after it took its image (BERTH_TEST_HOLD_AT, cri/crashpoint.go). The test
// cancels the call, which ends the server's context as a kubelet's deadline does, and waits until berthd logged the
// call's end before it lets the work finish: no deadline has to be guessed.
func TestSlowCallRetry(t *testing.T) {
	d := newGatedPodDaemon(t)
	holdCreate := filepath.Join(d.dir, "hold-create")
	if err := syscall.Mkfifo(holdCreate, 0o600); err != nil {
		t.Fatal(err)
	}
	d.env = append(d.env, "BERTH_TEST_HOLD_AT=create-container:image-acquired="+holdCreate)
	rt, _ := d.startWithTestImage(t)

	pc := podConfig(d.dir, "hold")
	holdAdd := filepath.Join(d.dir, "hold-add")
	if err := os.WriteFile(holdAdd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	release := func() {
		if err := os.Remove(holdAdd); err != nil {
			t.Fatal(err)
		}
	}
	held := func() {
		for deadline := time.Now().Add(30 * time.Second); !exists(filepath.Join(d.dir, "add-waiting")); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the pod's CNI ADD did not start:\n%s", d.log)
			}
		}
	}
	podID := slowRetry(t, d, "RunPodSandbox", held, release, func(c context.Context) (string, error) {
		r, err := rt.RunPodSandbox(c, &runtimeapi.RunPodSandboxRequest{Config: pc})
		return r.GetPodSandboxId(), err
	})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rt.StopPodSandbox(c, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
		rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
	})
	pods, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != podID || pods.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods after the retry = %v (%v), want just %s, ready", pods.GetItems(), err, podID)
	}
	if _, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("third RunPodSandbox = %v, want AlreadyExists", err)
	}

	req := &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: containerConfig("slow", "sleep", "100"), SandboxConfig: pc}
	var writer *os.File
	held = func() {
		// Opening the fifo's write end returns once berthd opened its read end: the call is at the point.
		opened := make(chan error, 1)
		go func() {
			var err error
			writer, err = os.OpenFile(holdCreate, os.O_WRONLY, 0)
			opened <- err
		}()
		select {
		case err := <-opened:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("CreateContainer did not reach its hold point:\n%s", d.log)
		}
	}
	release = func() { writer.Close() }
	ctrID := slowRetry(t, d, "CreateContainer", held, release, func(c context.Context) (string, error) {
		r, err := rt.CreateContainer(c, req)
		return r.GetContainerId(), err
	})
	ctrs, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil || len(ctrs.Containers) != 1 || ctrs.Containers[0].Id != ctrID || ctrs.Containers[0].State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("containers after the retry = %v (%v), want just %s, created", ctrs.GetContainers(), err, ctrID)
	}
	if _, err := rt.CreateContainer(ctx(t), req); status.Code(err) != codes.AlreadyExists {
		t.Errorf("third CreateContainer = %v, want AlreadyExists", err)
	}
}

// slowRetry makes a first call that held() proves is held in berthd, cancels it, waits until berthd logged its end,
// starts the retry, lets the first call's work go on with release() and returns the id the retry got.
func slowRetry(t *testing.T, d *daemon, rpc string, held, release func(), call func(context.Context) (string, error)) string {
	t.Helper()
	first, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := call(first)
		firstDone <- err
	}()
	held()
	cancel()
	if err := <-firstDone; status.Code(err) != codes.Canceled {
		t.Fatalf("first %s, canceled while held = %v, want Canceled", rpc, err)
	}
	// Until berthd's handler has returned, the finished work could still be delivered to it, and the retry would
	// then rightly be AlreadyExists.
	ended := func() bool {
		for line := range strings.Lines(d.log.String()) {
			if strings.Contains(line, `msg="cri call"`) && strings.Contains(line, "rpc="+rpc) && strings.Contains(line, "code=Canceled") {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !ended(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("berthd did not log the end of the canceled %s:\n%s", rpc, d.log)
		}
	}
	type result struct {
		id  string
		err error
	}
	retried := make(chan result, 1)
	rctx := ctx(t)
	go func() {
		id, err := call(rctx)
		retried <- result{id, err}
	}()
	release()
	r := <-retried
	if r.err != nil || r.id == "" {
		t.Fatalf("%s retry = %q, %v, want the first call's object\n%s", rpc, r.id, r.err, d.log)
	}
	return r.id
}

// newGatedPodDaemon is newPodDaemon whose network is the loopback followed by testdata/cni-gate, its gate files in
// the daemon's dir.
func newGatedPodDaemon(t *testing.T) *daemon {
	t.Helper()
	needImages(t)
	cniBin := os.Getenv("BERTH_TEST_CNI_BIN")
	if cniBin == "" {
		t.Skip("no CNI plugins: run through hack/integration.sh")
	}
	gateBin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", gateBin+"/", "./testdata/cni-gate").CombinedOutput(); err != nil {
		t.Fatalf("build cni-gate: %v\n%s", err, out)
	}
	d := newDaemon(t, fmt.Sprintf("bin_dirs = [%q, %q]\n", cniBin, gateBin))
	if err := os.MkdirAll(filepath.Join(d.dir, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	conflist := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"berth-gate","plugins":[{"type":"loopback"},{"type":"cni-gate","gates":%q}]}`, d.dir)
	if err := os.WriteFile(filepath.Join(d.dir, "net.d", "10-gate.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}
