package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/cgroups"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/sysctl"
)

// The tests below need root: they make namespaces, mounts and cgroups (cgroup v1 or v2, cgroupfs driver).

type testEnv struct {
	stateDir string
	mons     *fakeMonitors
	net      *fakeNetwork
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	e := &testEnv{stateDir: t.TempDir(), mons: newFakeMonitors(t), net: &fakeNetwork{t: t}}
	t.Cleanup(func() { unmountAll(filepath.Join(e.stateDir, "pods")) })
	return e
}

// manager returns a Manager on the env's state dir; a second call is a berthd restart.
func (e *testEnv) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{StateDir: e.stateDir, Monitors: e.mons, Network: e.net, MinOOMScoreAdj: -1000, UsernsGID: testUsernsGID})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testUsernsGID is the tests' userns group: a gid no one has.
const testUsernsGID = 4242

var testID = func() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("t%dp%d", os.Getpid(), n) }
}()

func fullConfig() Config {
	return Config{
		ID: testID(), Name: "web", Namespace: "default", UID: "uid-1", Hostname: "web-0",
		DNS: DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		Sysctls: map[string]string{
			"net.ipv4.ip_forward": "1", "net/ipv4/ping_group_range": "0 2147483647", "kernel.shmmax": "68719476736",
			"kernel.domainname": "example.org",
		},
	}
}

func TestCreateRemove(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	cfg := fullConfig()
	cfg.LogDir = filepath.Join(t.TempDir(), "logs", "pod")
	hostSysctls := map[string]string{}
	for name := range cfg.Sysctls {
		hostSysctls[name] = readTrim(t, sysctl.Path(name))
	}
	p, err := m.Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Namespaces: bind mounts of nsfs, none of them the host's.
	mounts := mountsUnder(t, p.Dir())
	for kind, path := range map[nsKind]string{nsNet: p.NetNSPath(), nsIPC: p.IPCNSPath(), nsUTS: p.UTSNSPath()} {
		if path == "" {
			t.Fatalf("%s namespace path empty", kind)
		}
		if fs := mountFSType(mounts, path); fs != "nsfs" {
			t.Errorf("%s: mounted %q, want an nsfs bind mount", path, fs)
		}
		if inode(t, path) == inode(t, "/proc/self/ns/"+string(kind)) {
			t.Errorf("%s namespace is the host's", kind)
		}
	}
	pidNS := p.PIDNSPath()
	if pidNS == "" || inode(t, pidNS) == inode(t, "/proc/self/ns/pid") {
		t.Errorf("PID namespace path %q: want the pause process's own", pidNS)
	}

	// Inside the namespaces: hostname, loopback up, sysctls.
	var uname unix.Utsname
	got := map[string]string{}
	err = inNamespaces(p.nsPaths(), func() error {
		if err := unix.Uname(&uname); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return errors.New("loopback is down")
		}
		for name := range cfg.Sysctls {
			b, err := os.ReadFile(sysctl.Path(name))
			if err != nil {
				return err
			}
			got[name] = strings.Join(strings.Fields(string(b)), " ")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := unix.ByteSliceToString(uname.Nodename[:]); h != "web-0" {
		t.Errorf("hostname in the pod: %q", h)
	}
	for name, want := range cfg.Sysctls {
		if got[name] != want {
			t.Errorf("sysctl %s in the pod = %q, want %q", name, got[name], want)
		}
		if host := readTrim(t, sysctl.Path(name)); host != hostSysctls[name] {
			t.Errorf("sysctl %s on the host changed from %q to %q", name, hostSysctls[name], host)
		}
	}

	// Files.
	wantFile(t, p.HostnamePath(), "web-0\n")
	wantFile(t, p.ResolvPath(), "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n")
	wantFile(t, p.HostsPath(), string(renderHosts("web-0", nil))+fakeIP.String()+"\tweb-0\n")
	if fi, err := os.Stat(cfg.LogDir); err != nil || !fi.IsDir() {
		t.Errorf("log dir: %v", err)
	}

	// shm.
	shm := mountInfo(mounts, p.ShmPath())
	if shm == nil || shm.FSType != "tmpfs" {
		t.Fatalf("shm: %+v, want a tmpfs", shm)
	}
	for _, opt := range []string{"nosuid", "nodev", "noexec"} {
		if !slices.Contains(strings.Split(shm.Options, ","), opt) {
			t.Errorf("shm options %q lack %s", shm.Options, opt)
		}
	}
	if !strings.Contains(shm.VFSOptions, "size=65536k") {
		t.Errorf("shm fs options %q: want size=65536k", shm.VFSOptions)
	}
	if fi, err := os.Stat(p.ShmPath()); err != nil || fi.Mode()&os.ModePerm != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("shm mode: %v %v, want 1777", fi.Mode(), err)
	}

	// Cgroups: the pod cgroup in every hierarchy, the monitor in its leaf.
	if p.CgroupParent() != "/berth/"+cfg.ID {
		t.Errorf("cgroup parent %q", p.CgroupParent())
	}
	dirs := cgroupDirs(t, p.CgroupParent())
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("pod cgroup: %v", err)
		}
	}
	mon := e.mons.byDir(p.Dir())
	leaf := cgroupDirs(t, p.monitorCgroup())[0]
	pids, err := cgroups.GetPids(leaf)
	if err != nil || !slices.Contains(pids, mon.cmds[0].Process.Pid) {
		t.Errorf("monitor cgroup %s holds %v (%v), want the monitor", leaf, pids, err)
	}
	if o := e.mons.opts[0]; !o.NeedPause || o.OOMScoreAdj != -998 || o.CgroupPath != p.CgroupParent() || o.Dir != p.Dir() {
		t.Errorf("monitor options %+v", o)
	}

	if err := m.Stop(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if s, d := e.net.counts(); s != 1 || d != 1 {
		t.Errorf("network setups %d, teardowns %d after two Stops, want 1 and 1", s, d)
	}
	if _, err := os.Stat(p.NetNSPath()); err != nil {
		t.Errorf("Stop removed the netns: %v", err)
	}

	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, dirs)
	if !mon.exited() {
		t.Error("monitor still running")
	}
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if _, d := e.net.counts(); d != 1 {
		t.Errorf("%d teardowns after Remove of a stopped pod, want 1", d)
	}
}

func TestHostNamespaces(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	cfg := Config{ID: testID(), Namespaces: NamespaceOptions{Network: NamespaceNode, PID: NamespaceNode, IPC: NamespaceNode}}
	p, err := m.Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"net": p.NetNSPath(), "ipc": p.IPCNSPath(), "uts": p.UTSNSPath(),
		"pid": p.PIDNSPath(), "shm": p.ShmPath()} {
		if path != "" {
			t.Errorf("%s path %q with host namespaces", name, path)
		}
	}
	if _, err := os.Stat(p.path(nsDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ns dir: %v, want none", err)
	}
	if len(mountsUnder(t, p.Dir())) != 0 {
		t.Errorf("mounts under a host-namespace pod: %v", mountsUnder(t, p.Dir()))
	}
	host, _ := os.Hostname()
	wantFile(t, p.HostnamePath(), host+"\n")
	wantFile(t, p.HostsPath(), readFile(t, hostHostsFile))
	wantFile(t, p.ResolvPath(), readFile(t, hostResolvConf))
	if s, _ := e.net.counts(); s != 0 {
		t.Error("network set up for a host-network pod")
	}
	if e.mons.opts[0].NeedPause {
		t.Error("pause asked for a host-PID pod")
	}
	dirs := cgroupDirs(t, p.CgroupParent())
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, dirs)
}

// The network's setup runs while the monitor starts: a Setup that waits for the monitor's start completes.
func TestNetworkSetupOverlapsMonitorStart(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	e.net.gate = make(chan struct{})
	e.mons.onStart = func() { close(e.net.gate) }
	defer func() { e.net.gate, e.mons.onStart = nil, nil }()
	p, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Network(); n == nil || len(n.IPs) != 1 || n.IPs[0] != fakeIP {
		t.Errorf("network = %+v, want the setup's IP", n)
	}
	if hosts := readFile(t, p.HostsPath()); !strings.Contains(hosts, fakeIP.String()) {
		t.Errorf("hosts file lacks the pod IP:\n%s", hosts)
	}
	dirs := cgroupDirs(t, p.CgroupParent())
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, dirs)
}

// TestCreateRollback fails Create after each stage in turn (and for real in two places): nothing is left.
func TestCreateRollback(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	injected := errors.New("injected")
	for _, s := range m.stages("") {
		t.Run("after "+s.name, func(t *testing.T) {
			m.afterStage = func(stage string) error {
				if stage == s.name {
					return injected
				}
				return nil
			}
			defer func() { m.afterStage = nil }()
			_, d0 := e.net.counts()
			cfg := fullConfig()
			p := &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID), cgroup: "/berth/" + cfg.ID}
			_, err := m.Create(context.Background(), cfg)
			if !errors.Is(err, injected) || !strings.Contains(err.Error(), s.name) {
				t.Fatalf("Create: %v, want the injected error at %s", err, s.name)
			}
			assertGone(t, p, cgroupDirs(t, p.cgroup))
			if mon := e.mons.byDir(p.dir); mon != nil && !mon.exited() {
				t.Error("monitor still running")
			}
			s1, d1 := e.net.counts()
			if reached := slices.IndexFunc(m.stages(""), func(x stage) bool { return x.name == "network" }) <=
				slices.IndexFunc(m.stages(""), func(x stage) bool { return x.name == s.name }); reached != (d1 > d0) {
				t.Errorf("network stage reached: %v, teardown ran: %v (setups %d)", reached, d1 > d0, s1)
			}
		})
	}
	t.Run("bad sysctl", func(t *testing.T) {
		cfg := fullConfig()
		cfg.Sysctls = map[string]string{"net.ipv4.no_such_sysctl": "1"}
		_, err := m.Create(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "no_such_sysctl") {
			t.Fatalf("Create: %v, want the sysctl's error", err)
		}
		assertGone(t, &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID)}, cgroupDirs(t, "/berth/"+cfg.ID))
	})
	t.Run("network setup fails", func(t *testing.T) {
		e.net.setupErr = errors.New("no IPs left")
		defer func() { e.net.setupErr = nil }()
		_, d0 := e.net.counts()
		cfg := fullConfig()
		if _, err := m.Create(context.Background(), cfg); err == nil {
			t.Fatal("Create succeeded")
		}
		if _, d1 := e.net.counts(); d1 != d0+1 {
			t.Error("failed setup not torn down")
		}
		assertGone(t, &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID)}, cgroupDirs(t, "/berth/"+cfg.ID))
	})
	t.Run("rollback fails", func(t *testing.T) {
		m.afterStage = func(stage string) error {
			if stage == "files" {
				return injected
			}
			return nil
		}
		defer func() { m.afterStage = nil }()
		e.net.failDown = errors.New("plugin timed out")
		p, err := m.Create(context.Background(), fullConfig())
		e.net.failDown = nil
		if !errors.Is(err, injected) || p == nil {
			t.Fatalf("Create: %v, %v; want the injected error and the half-made pod", p, err)
		}
		dirs := cgroupDirs(t, p.CgroupParent())
		if err := m.Remove(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		assertGone(t, p, dirs)
	})
	t.Run("monitor start fails", func(t *testing.T) {
		e.mons.startErr = errors.New("exec format error")
		defer func() { e.mons.startErr = nil }()
		cfg := fullConfig()
		if _, err := m.Create(context.Background(), cfg); err == nil {
			t.Fatal("Create succeeded")
		}
		assertGone(t, &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID)}, cgroupDirs(t, "/berth/"+cfg.ID))
	})
}

// TestCrashDuringCreate stops Create dead after each stage, as a SIGKILL of berthd would: a restarted
// manager reports the pod half-made and Remove cleans it up.
func TestCrashDuringCreate(t *testing.T) {
	e := newEnv(t)
	for _, s := range e.manager(t).stages("") {
		t.Run("after "+s.name, func(t *testing.T) {
			m := e.manager(t)
			m.afterStage = func(stage string) error {
				if stage == s.name {
					runtime.Goexit() // no rollback, like a crash
				}
				return nil
			}
			cfg := fullConfig()
			done := make(chan struct{})
			go func() {
				defer close(done)
				m.Create(context.Background(), cfg)
				t.Error("Create returned")
			}()
			<-done

			recovered, err := e.manager(t).Recover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(recovered, func(r RecoveredPod) bool { return r.Pod.ID() == cfg.ID })
			if i < 0 {
				t.Fatalf("Recover did not find pod %s in %v", cfg.ID, recovered)
			}
			r := recovered[i]
			if (r.Err == nil) != (s.name == "ready") {
				t.Errorf("recovered pod error %v after a crash at %s", r.Err, s.name)
			}
			dirs := cgroupDirs(t, "/berth/"+cfg.ID)
			if err := e.manager(t).Remove(context.Background(), r.Pod); err != nil {
				t.Fatal(err)
			}
			assertGone(t, r.Pod, dirs)
			if mon := e.mons.byDir(r.Pod.Dir()); mon != nil && !mon.exited() {
				t.Error("monitor still running")
			}
		})
	}
}

func TestRecover(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	live, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	dead, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	e.mons.die(dead.Dir())
	if err := os.WriteFile(filepath.Join(m.podsDir, "junk.tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(m.podsDir, testID())
	if err := os.Mkdir(broken, 0o711); err != nil {
		t.Fatal(err)
	}

	m2 := e.manager(t)
	recovered, err := m2.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]RecoveredPod{}
	for _, r := range recovered {
		byID[r.Pod.ID()] = r
	}
	if len(byID) != 3 {
		t.Fatalf("recovered %d pods, want 3: %v", len(byID), recovered)
	}
	r := byID[live.ID()]
	if r.Err != nil {
		t.Fatalf("live pod: %v", r.Err)
	}
	if r.Pod.NetNSPath() != live.NetNSPath() || r.Pod.CgroupParent() != live.CgroupParent() ||
		r.Pod.PIDNSPath() != live.PIDNSPath() || r.Pod.Config().Hostname != "web-0" {
		t.Errorf("recovered pod differs: %+v vs %+v", r.Pod, live)
	}
	if byID[dead.ID()].Err == nil {
		t.Error("pod with a dead monitor reported fine")
	}
	if byID[filepath.Base(broken)].Err == nil {
		t.Error("pod dir without a record reported fine")
	}
	for _, r := range recovered {
		dirs := cgroupDirs(t, "/berth/"+r.Pod.ID())
		if err := m2.Remove(context.Background(), r.Pod); err != nil {
			t.Fatalf("remove %s: %v", r.Pod.ID(), err)
		}
		assertGone(t, r.Pod, dirs)
	}
}

// TestRemoveKillsUnresponsiveMonitor: when Shutdown fails, Remove kills what is in the monitor's cgroup.
func TestRemoveKillsUnresponsiveMonitor(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	p, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	e.mons.shutdownErr = errors.New("monitor wedged")
	dirs := cgroupDirs(t, p.CgroupParent())
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, dirs)
	if !e.mons.byDir(p.Dir()).exited() {
		t.Error("wedged monitor survived Remove")
	}
}

// TestRemoveRetriesNetworkTeardown: a failing teardown keeps the pod (netns included) for the next Remove.
func TestRemoveRetriesNetworkTeardown(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	p, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	e.net.failDown = errors.New("plugin timed out")
	if err := m.Remove(context.Background(), p); err == nil {
		t.Fatal("Remove succeeded with a failing teardown")
	}
	if _, err := os.Stat(p.NetNSPath()); err != nil {
		t.Fatalf("netns gone before the network was torn down: %v", err)
	}
	e.net.failDown = nil
	dirs := cgroupDirs(t, p.CgroupParent())
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, dirs)
}

// TestCgroupParent: a kubelet-made parent is kept; one berth had to make is removed with its last pod.
func TestCgroupParent(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	existing := "/" + testID() + "-kubelet"
	made := "/" + testID() + "-missing"
	for _, c := range []string{existing, made} {
		t.Cleanup(func() {
			for _, d := range cgroupDirs(t, c) {
				cgroups.RemovePath(d)
			}
		})
	}
	kubelet, err := newCgroupManager(false, existing)
	if err != nil {
		t.Fatal(err)
	}
	if err := kubelet.Apply(-1); err != nil {
		t.Fatal(err)
	}

	var pods []*Pod
	for _, parent := range []string{existing, made, made} {
		cfg := fullConfig()
		cfg.CgroupParent = parent
		p, err := m.Create(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.CgroupParent() != parent {
			t.Errorf("cgroup parent %q, want %q", p.CgroupParent(), parent)
		}
		pods = append(pods, p)
	}
	for i, p := range pods {
		if err := m.Remove(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		assertGone(t, p, cgroupDirs(t, p.monitorCgroup()))
		wantExists := map[int]bool{0: true, 1: true, 2: false}[i] // the second pod leaves the parent to the third
		for _, d := range cgroupDirs(t, p.CgroupParent()) {
			if _, err := os.Stat(d); (err == nil) != wantExists {
				t.Errorf("after removing pod %d: %s exists=%v, want %v", i, d, err == nil, wantExists)
			}
		}
	}
}

func TestCreateAlreadyExists(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	cfg := fullConfig()
	p, err := m.Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(context.Background(), cfg); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second Create: %v, want already exists", err)
	}
	if _, err := os.Stat(p.NetNSPath()); err != nil {
		t.Fatalf("failed second Create harmed the first pod: %v", err)
	}
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// assertGone checks a removed pod left nothing: no mounts, no dir, none of the cgroup dirs given.
func assertGone(t *testing.T, p *Pod, cgroupDirs []string) {
	t.Helper()
	if ms := mountsUnder(t, p.Dir()); len(ms) != 0 {
		for _, m := range ms {
			t.Errorf("left mounted: %s (%s)", m.Mountpoint, m.FSType)
		}
	}
	if _, err := os.Lstat(p.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir %s: %v, want gone", p.Dir(), err)
	}
	for _, d := range cgroupDirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s: %v, want gone", d, err)
		}
	}
}

// cgroupDirs lists the directories of a cgroupfs cgroup in every hierarchy but devices, which pod and
// monitor cgroups leave alone (as the kubelet does for pod cgroups).
func cgroupDirs(t *testing.T, cgroup string) []string {
	t.Helper()
	m, err := newCgroupManager(false, cgroup)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for ctl, d := range m.GetPaths() {
		if ctl != "devices" {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	if len(dirs) == 0 {
		t.Fatalf("no cgroup hierarchies for %s", cgroup)
	}
	return dirs
}

func mountsUnder(t *testing.T, dir string) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func mountInfo(ms []*mountinfo.Info, path string) *mountinfo.Info {
	for _, m := range ms {
		if m.Mountpoint == path {
			return m
		}
	}
	return nil
}

func mountFSType(ms []*mountinfo.Info, path string) string {
	if m := mountInfo(ms, path); m != nil {
		return m.FSType
	}
	return ""
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readTrim(t *testing.T, path string) string { return strings.TrimSpace(readFile(t, path)) }

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	if got := readFile(t, path); got != want {
		t.Errorf("%s = %q, want %q", filepath.Base(path), got, want)
	}
}

// A stage that panics is a failed stage: Create returns an error wrapping errdefs.ErrInternal and the stages done
// are undone, instead of the panic unwinding past them.
func TestCreateStagePanics(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	m.afterStage = func(stage string) error {
		if stage == "network" {
			panic("bug in a stage")
		}
		return nil
	}
	defer func() { m.afterStage = nil }()
	cfg := fullConfig()
	p := &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID), cgroup: "/berth/" + cfg.ID}
	_, d0 := e.net.counts()
	_, err := m.Create(context.Background(), cfg)
	if !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "bug in a stage") {
		t.Fatalf("Create: %v, want an internal error with the panic", err)
	}
	assertGone(t, p, cgroupDirs(t, p.cgroup))
	if _, d1 := e.net.counts(); d1 != d0+1 {
		t.Errorf("network teardowns: %d, want 1", d1-d0)
	}
}
