package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/pause"
	"github.com/berthcri/berth/oci/runc"
)

// The test binary is the monitor and libcontainer's init, as berth-monitor is: TestMain dispatches the
// arguments berth-monitor's main would ("pause" is taken by oci/pause's constructor before Go starts).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "init":
			runc.Init()
		case Arg:
			os.Exit(Main(os.Args[2:], pause.Command))
		case ctr.HelperArg:
			logHelperOp(os.Args[2:])
			os.Exit(runc.Helper(os.Args[2:]))
		case "hold-monitor":
			os.Exit(holdMonitor(os.Args[2:]))
		}
	}
	// Under -race every helper process would sleep a second at exit (the race runtime's default).
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// helperLogEnv names a file to which each helper run appends a line "<op> <container id>".
const helperLogEnv = "BERTH_TEST_HELPER_LOG"

func logHelperOp(args []string) {
	path := os.Getenv(helperLogEnv)
	if path == "" || len(args) == 0 {
		return
	}
	id := ""
	if i := slices.Index(args, "-id"); i >= 0 && i+1 < len(args) {
		id = args[i+1]
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(f, "%s %s\n", args[len(args)-1], id)
	f.Close()
}

// logHelpers makes every helper of the monitors the test starts log its run, and returns the log's reader.
func logHelpers(t *testing.T) func() []string {
	path := filepath.Join(t.TempDir(), "helpers.log")
	t.Setenv(helperLogEnv, path)
	return func() []string {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return strings.Fields(strings.ReplaceAll(string(b), " ", "/"))
	}
}

// testEnv is a state dir, a busybox rootfs and a cgroup parent, all removed at the end of the test.
type testEnv struct {
	t        *testing.T
	dir      string
	runcRoot string
	rootfs   string
	cgroup   string // cgroupfs parent of the test's pods
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	e := &testEnv{
		t:        t,
		dir:      dir,
		runcRoot: filepath.Join(dir, "runc"),
		rootfs:   filepath.Join(dir, "rootfs"),
		cgroup:   fmt.Sprintf("/berth-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
	}
	e.makeRootfs()
	t.Cleanup(e.cleanup)
	return e
}

func (e *testEnv) makeRootfs() {
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(e.rootfs, d), 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.rootfs, "bin/busybox"), bb, 0o755); err != nil {
		e.t.Fatal(err)
	}
	// busybox --install links to its host path: hard links work inside the container too.
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		e.t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Link(filepath.Join(e.rootfs, "bin/busybox"), filepath.Join(e.rootfs, "bin", applet)); err != nil {
			e.t.Fatal(err)
		}
	}
}

// cgroupDirs lists where the cgroup path exists, in every hierarchy.
func cgroupDirs(path string) []string {
	var found []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, r := range roots {
		if _, err := os.Stat(filepath.Join(r, path)); err == nil {
			found = append(found, filepath.Join(r, path))
		}
	}
	return found
}

// cleanup kills whatever the test left in its cgroups, then removes them.
func (e *testEnv) cleanup() {
	dirs := cgroupDirs(e.cgroup)
	for _, d := range dirs {
		if pids, _ := cgroups.GetAllPids(d); len(pids) > 0 {
			e.t.Errorf("processes left in %s: %v", d, pids)
			for _, pid := range pids {
				syscallKill(pid)
			}
		}
	}
	for _, d := range dirs {
		if err := cgroups.RemovePath(d); err != nil {
			e.t.Errorf("remove %s: %v", d, err)
		}
	}
}

func (e *testEnv) podDir(pod string) string { return filepath.Join(e.dir, "pods", pod) }

func (e *testEnv) start(pod string, pause bool) *Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Start(ctx, e.startOptions(pod, pause))
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(e.podDir(pod), LogFileName))
		e.t.Fatalf("%v; monitor.log:\n%s", err, log)
	}
	e.t.Cleanup(func() { e.shutdown(c) })
	return c
}

func (e *testEnv) startOptions(pod string, pause bool) StartOptions {
	bin, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	if b := os.Getenv("BERTH_BINARY"); b != "" {
		bin = b
	}
	return StartOptions{
		PodID:      pod,
		Dir:        e.podDir(pod),
		RuncRoot:   e.runcRoot,
		CgroupPath: e.cgroup + "/" + pod,
		NeedPause:  pause,
		Binary:     bin,
	}
}

func (e *testEnv) shutdown(c *Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil && !strings.Contains(err.Error(), "unavailable") {
		e.t.Errorf("shutdown: %v", err)
	}
}

type specOpt func(*specs.Spec)

// bundle writes a bundle for a container of pod running args and returns its directory.
func (e *testEnv) bundle(pod, id string, args []string, opts ...specOpt) string {
	e.t.Helper()
	b := filepath.Join(e.podDir(pod), "containers", id)
	if err := os.MkdirAll(b, 0o711); err != nil {
		e.t.Fatal(err)
	}
	s := e.spec(pod, id, args)
	for _, o := range opts {
		o(s)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return b
}

var testCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func (e *testEnv) spec(pod, id string, args []string) *specs.Spec {
	const noexec = "noexec"
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: e.rootfs},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/bin", "HOME=/"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: testCaps, Effective: testCaps, Permitted: testCaps,
			},
			NoNewPrivileges: true,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Hostname: id,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", noexec, "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", noexec, "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", noexec, "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", noexec, "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", noexec, "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: e.cgroup + "/" + pod + "/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// waitExit polls the bundle's exit.json.
func waitExit(t *testing.T, bundle string, within time.Duration) *Exit {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e, err := ReadExit(bundle)
		if err == nil {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exit recorded in %s after %v: %v", bundle, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type logLine struct{ stream, tag, text string }

func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for line := range strings.Lines(string(data)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
		if len(f) != 4 {
			t.Fatalf("log line %q: not in CRI format", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, logLine{f[1], f[2], f[3]})
	}
	return out
}

// processesNamed lists the pids whose command line is args.
func processesNamed(args ...string) []int {
	want := strings.Join(args, "\x00") + "\x00"
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && string(b) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memoryKiB reads the Pss and Rss of a process from smaps_rollup.
func memoryKiB(t *testing.T, pid int) (pss, rss int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Pss:":
			pss = n
		case "Rss:":
			rss = n
		}
	}
	return pss, rss
}

// syncBuffer is a bytes.Buffer written by one goroutine and read by another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
