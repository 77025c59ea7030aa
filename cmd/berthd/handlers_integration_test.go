//go:build integration

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crunDaemon is a pod daemon with Debian's crun configured as the RuntimeClass handler "crun".
func crunDaemon(t *testing.T) (*daemon, string) {
	t.Helper()
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Skip("no crun (apt-get install crun; hack/install-deps.sh installs it)")
	}
	d := newPodDaemon(t)
	f, err := os.OpenFile(d.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n[runtimes.crun]\nbinary = \"" + crun + "\"\n"); err != nil {
		t.Fatal(err)
	}
	return d, crun
}

// crunRRO says whether crun states the rro mount option ("crun features", which crun 1.8.1 lacks).
func crunRRO(crun string) bool {
	out, err := exec.Command(crun, "features").Output()
	if err != nil {
		return false
	}
	var f struct {
		MountOptions []string `json:"mountOptions"`
	}
	return json.Unmarshal(out, &f) == nil && slices.Contains(f.MountOptions, "rro")
}

// TestRuntimeHandlerCrun runs a pod under the handler crun: its container runs with crun (crun's state has it), logs
// through the monitor, execs, reports its exit codes, stops and is removed without leaving crun state or berth's
// records. Status lists runc and crun with their features, and an unknown handler is NotFound naming
// runtime_handler.
func TestRuntimeHandlerCrun(t *testing.T) {
	d, crun := crunDaemon(t)
	rt, _ := d.startWithTestImage(t)

	st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]*runtimeapi.RuntimeHandlerFeatures{}
	for _, h := range st.GetRuntimeHandlers() {
		handlers[h.GetName()] = h.GetFeatures()
	}
	for _, name := range []string{"", "runc", "crun"} {
		if _, ok := handlers[name]; !ok {
			t.Errorf("Status lists no handler %q: %v", name, st.GetRuntimeHandlers())
		}
	}
	if f := handlers["crun"]; f.GetUserNamespaces() || f.GetRecursiveReadOnlyMounts() != (crunRRO(crun) && handlers["runc"].GetRecursiveReadOnlyMounts()) {
		t.Errorf("crun's features: %v (crun features states rro: %v)", f, crunRRO(crun))
	}

	_, err = rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(d.dir, "nohandler"), RuntimeHandler: "no-such"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "runtime_handler") {
		t.Errorf("RunPodSandbox with handler no-such: %v, want NotFound naming runtime_handler", err)
	}

	pc := podConfig(d.dir, "crun")
	pr, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc, RuntimeHandler: "crun"})
	if err != nil {
		t.Fatal(err)
	}
	pod := pr.PodSandboxId
	if ps, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod}); err != nil || ps.GetStatus().GetRuntimeHandler() != "crun" {
		t.Errorf("PodSandboxStatus: %v, runtime handler %q", err, ps.GetStatus().GetRuntimeHandler())
	}
	create := func(name string, cmd ...string) string {
		t.Helper()
		c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod,
			Config: containerConfig(name, cmd...), SandboxConfig: pc})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatal(err)
		}
		return c.ContainerId
	}
	crunRoot := filepath.Join(d.dir, "state", "runtimes", "crun", "root")
	records := filepath.Join(d.dir, "state", "runtimes", "crun", "containers")

	server := create("server", "sh", "-c", "trap 'echo bye; exit 42' TERM; echo hello; while true; do sleep 0.1; done")
	out, err := exec.Command(crun, "--root", crunRoot, "state", server).Output()
	if err != nil || !strings.Contains(string(out), `"running"`) {
		t.Fatalf("crun state %s: %v\n%s", server, err, out)
	}
	waitLog(t, filepath.Join(d.dir, "logs", "crun", "server.log"), "hello")

	ex, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: server, Timeout: 10,
		Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if ex.ExitCode != 3 || string(ex.Stdout) != "out\n" || string(ex.Stderr) != "err\n" {
		t.Errorf("ExecSync: exit %d, stdout %q, stderr %q; want 3, out, err", ex.ExitCode, ex.Stdout, ex.Stderr)
	}
	// A timed-out exec is killed and reported as such.
	start := time.Now()
	if _, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: server, Timeout: 1,
		Cmd: []string{"sh", "-c", "sleep 61 & sleep 61"}}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("ExecSync sleep 61 with timeout 1s: %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("ExecSync with timeout 1s took %v", time.Since(start))
	}
	// ... with what it forked.
	if ps, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: server, Timeout: 10, Cmd: []string{"ps"}}); err != nil || strings.Contains(string(ps.Stdout), "sleep 61") {
		t.Errorf("after the timed-out exec: %v\n%s", err, ps.GetStdout())
	}

	quitter := create("quitter", "sh", "-c", "exit 7")
	waitExited(t, rt, quitter, 7)

	if _, err := rt.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: server, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	waitExited(t, rt, server, 42)
	waitLog(t, filepath.Join(d.dir, "logs", "crun", "server.log"), "bye")

	for _, id := range []string{server, quitter} {
		if _, err := rt.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{crunRoot, records} {
			if _, err := os.Stat(filepath.Join(dir, id)); !os.IsNotExist(err) {
				t.Errorf("container %s left %s/%s behind (%v)", id, dir, id, err)
			}
		}
	}
	if _, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
}

func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no %q:\n%s", path, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitExited(t *testing.T, rt runtimeapi.RuntimeServiceClient, id string, code int32) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := containerState(t, rt, id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			if st.ExitCode != code {
				t.Errorf("container %s exited with %d, want %d", id, st.ExitCode, code)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %v, not exited", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRuntimeHandlerCrunRecovery kills berthd with SIGKILL while a crun container runs and logs: after the restart
// it still runs, logs, execs and stops with its exit code, and its removal leaves nothing of crun's or berth's.
func TestRuntimeHandlerCrunRecovery(t *testing.T) {
	d, crun := crunDaemon(t)
	rt, _ := d.startWithTestImage(t)
	pc := podConfig(d.dir, "crun-recovery")
	pr, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pc, RuntimeHandler: "crun"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pr.PodSandboxId,
		Config: containerConfig("ticker", "sh", "-c", "trap 'exit 43' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"), SandboxConfig: pc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(d.dir, "logs", "crun-recovery", "ticker.log")
	waitLog(t, logPath, "tick 3")

	d.kill9(t)
	size := fileSize(logPath)
	time.Sleep(500 * time.Millisecond)
	d.start(t)
	rt, _ = d.clients(t)
	if st := containerState(t, rt, c.ContainerId); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after the restart the container is %v", st.State)
	}
	if fileSize(logPath) <= size {
		t.Errorf("the container did not log while berthd was down")
	}
	ex, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Timeout: 10, Cmd: []string{"echo", "back"}})
	if err != nil || ex.ExitCode != 0 || string(ex.Stdout) != "back\n" {
		t.Fatalf("ExecSync after the restart: %v, exit %d, stdout %q", err, ex.GetExitCode(), ex.GetStdout())
	}
	if _, err := rt.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: c.ContainerId, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	waitExited(t, rt, c.ContainerId, 43)
	if _, err := rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pr.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pr.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"root", "containers"} {
		p := filepath.Join(d.dir, "state", "runtimes", "crun", dir, c.ContainerId)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left (%v)", p, err)
		}
	}
	if out, err := exec.Command(crun, "--root", filepath.Join(d.dir, "state", "runtimes", "crun", "root"), "list", "-q").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("crun list after the pod's removal: %v %q", err, out)
	}
}
