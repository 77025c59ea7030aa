//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var berthdBin string

func TestMain(m *testing.M) {
	// The unprivileged probe of TestHostUserReachesNothing runs no daemon.
	if os.Getenv(hostUserEnv) != "" {
		os.Exit(m.Run())
	}
	// A node VM has no Go toolchain: hack/vm ships berthd and berth-monitor from make build.
	if dir := os.Getenv("BERTH_TEST_BIN_DIR"); dir != "" {
		berthdBin = filepath.Join(dir, "berthd")
		for _, b := range []string{berthdBin, filepath.Join(dir, "berth-monitor")} {
			if _, err := os.Stat(b); err != nil {
				panic(fmt.Sprintf("BERTH_TEST_BIN_DIR: %v", err))
			}
		}
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "berthd-bin")
	if err != nil {
		panic(err)
	}
	berthdBin = filepath.Join(dir, "berthd")
	// berthd runs the pods' monitors from berth-monitor beside it.
	for out, pkg := range map[string]string{berthdBin: ".", filepath.Join(dir, "berth-monitor"): "../berth-monitor"} {
		build := exec.Command("go", "build", "-tags", "seccomp", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			panic(fmt.Sprintf("build %s: %v", pkg, err))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a real berthd on temporary dirs and socket.
type daemon struct {
	dir, config, socket string
	env                 []string // added to the test's environment
	cmd                 *exec.Cmd
	log                 *logBuffer
}

// logBuffer is berthd's output, written by exec's copying goroutine while a test may read it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newDaemon(t *testing.T, extraConfig string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{dir: dir, config: filepath.Join(dir, "berth.toml"), socket: filepath.Join(dir, "berth.sock")}
	// BERTH_TEST_CGROUP_DRIVER (hack/integration.sh's BERTH_CGROUP_DRIVER): node VMs run systemd as PID 1 and test
	// each driver (systemdDriver says which one runs).
	driver := ""
	if d := os.Getenv("BERTH_TEST_CGROUP_DRIVER"); d != "" {
		driver = fmt.Sprintf("cgroup_driver = %q\n", d)
	}
	conf := fmt.Sprintf("root_dir = %q\nstate_dir = %q\nlisten = %q\n%s[cni]\nconf_dir = %q\n%s", filepath.Join(dir, "root"),
		filepath.Join(dir, "state"), d.socket, driver, filepath.Join(dir, "net.d"), extraConfig)
	if err := os.WriteFile(d.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test-bed registry's mirror drop-in (hack/integration.sh), so tests can pull critest's images offline.
	if mirrors := os.Getenv("BERTH_TEST_MIRRORS"); mirrors != "" {
		os.MkdirAll(filepath.Join(dir, "berth.d"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "berth.d", "10-mirrors.toml"), must(os.ReadFile(mirrors)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// berthd leaves <state>/pods shared-mounted for its next start; the test's temp dir must not keep it.
	t.Cleanup(func() { syscall.Unmount(filepath.Join(dir, "state", "pods"), syscall.MNT_DETACH) })
	return d
}

// needImages skips a test that pulls images when no test-bed registry is configured (run it via hack/integration.sh).
func needImages(t *testing.T) {
	t.Helper()
	if os.Getenv("BERTH_TEST_MIRRORS") == "" {
		t.Skip("no test-bed registry: run through hack/integration.sh")
	}
}

func (d *daemon) start(t *testing.T) {
	t.Helper()
	d.log = &logBuffer{}
	d.cmd = exec.Command(berthdBin, "--config", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = append(os.Environ(), d.env...)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t) })
	// The socket accepts before berthd serves (it is opened first): wait for an answered call.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			rt, _ := d.clients(t)
			vctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := rt.Version(vctx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				return
			}
		}
		if d.cmd.Process.Signal(syscall.Signal(0)) != nil {
			break // exited at start
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("berthd did not listen on %s:\n%s", d.socket, d.log)
}

func (d *daemon) stop(t *testing.T) {
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("berthd exited with %v after SIGTERM:\n%s", err, d.log)
		}
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("berthd did not exit after SIGTERM")
	}
}

func (d *daemon) clients(t *testing.T) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// startWithTestImage starts the daemon and pulls testImage into it, what most pod tests begin with.
func (d *daemon) startWithTestImage(t *testing.T) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	d.start(t)
	rt, img := d.clients(t)
	if _, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: testImage}}); err != nil {
		t.Fatal(err)
	}
	return rt, img
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRuntimeInfo(t *testing.T) {
	d := newDaemon(t, "")
	d.start(t)
	rt, _ := d.clients(t)

	v, err := rt.Version(ctx(t), &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Errorf("version = %+v", v)
	}

	st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if !conds[runtimeapi.RuntimeReady].GetStatus() {
		t.Errorf("RuntimeReady = %+v", conds[runtimeapi.RuntimeReady])
	}
	net := conds[runtimeapi.NetworkReady]
	if net.GetStatus() || !strings.Contains(net.GetMessage(), "no network config found in "+filepath.Join(d.dir, "net.d")) {
		t.Errorf("NetworkReady without CNI config = %+v", net)
	}
	if !strings.Contains(st.Info["config"], d.socket) {
		t.Errorf("verbose info lacks the effective config: %v", st.Info)
	}

	rc, err := rt.RuntimeConfig(ctx(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver = %v on a host without systemd", rc.GetLinux().GetCgroupDriver())
	}

	_, err = rt.UpdateRuntimeConfig(ctx(t), &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "not-a-cidr"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pod_cidr") {
		t.Errorf("UpdateRuntimeConfig(bad cidr) = %v", err)
	}
}

func TestNetworkReadyWithConfig(t *testing.T) {
	d := newDaemon(t, "")
	bin := filepath.Join(d.dir, "cni-bin")
	os.MkdirAll(filepath.Join(d.dir, "net.d"), 0o755)
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(d.dir, "net.d", "10-test.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"bridge"}]}`), 0o644)
	os.WriteFile(d.config, append(must(os.ReadFile(d.config)), []byte(fmt.Sprintf("bin_dirs = [%q]\n", bin))...), 0o644)
	d.start(t)
	rt, _ := d.clients(t)
	netReady := func() *runtimeapi.RuntimeCondition {
		st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.Status.Conditions[1]
	}
	if c := netReady(); c.Status || !strings.Contains(c.Message, "10-test.conflist: plugin 'bridge' not found in "+bin) {
		t.Errorf("NetworkReady with a missing plugin = %+v", c)
	}
	os.WriteFile(filepath.Join(bin, "bridge"), []byte("#!/bin/sh\n"), 0o755)
	// berthd watches the dirs: the change shows within moments.
	c := netReady()
	for deadline := time.Now().Add(3 * time.Second); !c.Status && time.Now().Before(deadline); c = netReady() {
		time.Sleep(20 * time.Millisecond)
	}
	if !c.Status {
		t.Errorf("NetworkReady with config and plugin = %+v", c)
	}
}

func TestSecondInstanceRefused(t *testing.T) {
	d := newDaemon(t, "")
	d.start(t)
	other := filepath.Join(d.dir, "other.sock")
	out, err := exec.Command(berthdBin, "--config", d.config, "--listen", other).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another berthd") || !strings.Contains(string(out), "state dir") {
		t.Errorf("second berthd on the same state dir: err=%v out=%s", err, out)
	}
}

func TestSocketInUseRefused(t *testing.T) {
	d := newDaemon(t, "")
	d.start(t)
	// Another state dir, same socket: the live socket must not be stolen.
	out, err := exec.Command(berthdBin, "--config", d.config, "--state", filepath.Join(d.dir, "state2")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another process is serving on it") {
		t.Errorf("berthd on a live socket: err=%v out=%s", err, out)
	}
}

func TestStaleSocketRemoved(t *testing.T) {
	d := newDaemon(t, "")
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nothing answers
	d.start(t)
	fi, err := os.Stat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want 0660", fi.Mode().Perm())
	}
}

func TestBadConfigExits(t *testing.T) {
	cases := map[string]struct{ conf, want string }{
		"unknown key": {"bogus_key = 1\n", "bogus_key"},
		"bad driver":  {"cgroup_driver = \"nope\"\n", "cgroup_driver"},
		"bad mirror":  {"[registry.hosts.\"registry.k8s.io\"]\nmirrors = [\"127.0.0.1:5000\"]\n", "mirrors"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "berth.toml")
			os.WriteFile(conf, []byte(tc.conf), 0o644)
			out, err := exec.Command(berthdBin, "--config", conf, "--root", dir+"/r", "--state", dir+"/s", "--listen", dir+"/s.sock").CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), conf) {
				t.Errorf("err=%v out=%s; want a message naming %s and %q", err, out, conf, tc.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newPodDaemon is a daemon whose pods get a loopback-only CNI network from the plugins hack/integration.sh built,
// for tests of the pod and container lifecycle that need no pod-to-pod traffic.
func newPodDaemon(t *testing.T) *daemon {
	t.Helper()
	needImages(t)
	bin := os.Getenv("BERTH_TEST_CNI_BIN")
	if bin == "" {
		t.Skip("no CNI plugins: run through hack/integration.sh")
	}
	d := newDaemon(t, fmt.Sprintf("bin_dirs = [%q]\n", bin))
	if err := os.MkdirAll(filepath.Join(d.dir, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	lo := `{"cniVersion":"1.0.0","name":"berth-lo","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(d.dir, "net.d", "10-lo.conflist"), []byte(lo), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// runTestPod runs a pod for the test, stopped and removed when the test ends; it returns the pod's id.
func runTestPod(t *testing.T, rt runtimeapi.RuntimeServiceClient, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	pod, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	id := pod.PodSandboxId
	t.Cleanup(func() {
		// Bounded: a stop that hangs fails the test with its error instead of holding it to the binary's timeout.
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := rt.StopPodSandbox(c, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("StopPodSandbox(%s): %v", id, err)
		}
		if _, err := rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("RemovePodSandbox(%s): %v", id, err)
		}
	})
	return id
}
