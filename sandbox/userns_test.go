package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
)

var testUserNS = &UserNamespace{
	UIDs: []IDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
	GIDs: []IDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}},
}

func sysMappings(ms []IDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// nsOwner returns the inode of the user namespace that owns the namespace file at path (ioctl NS_GET_USERNS).
func nsOwner(t *testing.T, path string) uint64 {
	t.Helper()
	const nsGetUserns = 0xb701 // _IO(0xb7, 0x1)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, nsGetUserns)
	if err != nil {
		t.Fatalf("NS_GET_USERNS %s: %v", path, err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// searchable makes dir and its parent (t.TempDir's, made 0700) searchable by the ids of a user namespace.
func searchable(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

func userNSEnv(t *testing.T) *testEnv {
	e := newEnv(t)
	searchable(t, e.stateDir)
	if err := e.manager(t).UserNamespaces(); err != nil {
		t.Skip(err)
	}
	return e
}

// A pod with its own user namespace: the pause process is started in it and makes the pod's namespaces, which the
// user namespace owns; it has the mappings; everything is gone after Remove.
func TestUserNamespacePod(t *testing.T) {
	e := userNSEnv(t)
	m := e.manager(t)
	cfg := Config{ID: testID(), Hostname: "userns-0", UserNS: testUserNS, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}
	p, err := m.Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := e.mons.opts[0]
	if !o.NeedPause || o.UserNS != testUserNS || !slices.Equal(o.Unshare, []string{"net", "ipc", "uts"}) {
		t.Errorf("monitor options %+v", o)
	}
	userns := p.UserNSPath()
	if fs := mountFSType(mountsUnder(t, p.Dir()), userns); fs != "nsfs" {
		t.Fatalf("user namespace %q: mounted %q, want nsfs", userns, fs)
	}
	pause := e.mons.byDir(p.Dir()).pause
	if inode(t, userns) == inode(t, "/proc/self/ns/user") || inode(t, userns) != inode(t, fmt.Sprintf("/proc/%d/ns/user", pause)) {
		t.Fatal("the pod's user namespace is not its pause process's")
	}
	for _, path := range []string{p.NetNSPath(), p.IPCNSPath(), p.UTSNSPath(), p.PIDNSPath()} {
		if got := nsOwner(t, path); got != inode(t, userns) {
			t.Errorf("%s is owned by user namespace %d, want the pod's %d", path, got, inode(t, userns))
		}
	}
	if nsenter, err := exec.LookPath("nsenter"); err == nil {
		for file, want := range map[string]string{"uid_map": "0 100000 65536", "gid_map": "0 200000 65536", "setgroups": "allow"} {
			out, err := exec.Command(nsenter, "--user="+userns, "cat", "/proc/self/"+file).CombinedOutput()
			if got := strings.Join(strings.Fields(string(out)), " "); err != nil || got != want {
				t.Errorf("%s in the pod's user namespace = %q (%v), want %q", file, got, err, want)
			}
		}
	}
	var uname unix.Utsname
	err = inNamespaces(p.nsPaths(), func() error { return unix.Uname(&uname) })
	if h := unix.ByteSliceToString(uname.Nodename[:]); err != nil || h != "userns-0" {
		t.Errorf("hostname in the pod: %q (%v)", h, err)
	}
	// Only the pod's root (host gid 200000) traverses its dir; the pinned namespaces are berth's alone.
	for path, want := range map[string]string{p.Dir(): "710 0:200000", filepath.Join(p.Dir(), nsDir): "700 0:0"} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}

	dirs := cgroupDirs(t, p.CgroupParent())
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, dirs)
}

// Without a shared PID namespace the pod still has a pause process to make its namespaces; containers do not join
// its PID namespace.
func TestUserNamespacePodPIDContainer(t *testing.T) {
	e := userNSEnv(t)
	m := e.manager(t)
	p, err := m.Create(context.Background(), Config{ID: testID(), UserNS: testUserNS, Namespaces: NamespaceOptions{PID: NamespaceContainer}})
	if err != nil {
		t.Fatal(err)
	}
	if o := e.mons.opts[0]; !o.NeedPause || o.UserNS == nil {
		t.Errorf("monitor options %+v", o)
	}
	if p.PIDNSPath() != "" {
		t.Errorf("PID namespace path %q, want none", p.PIDNSPath())
	}
	if got := nsOwner(t, p.NetNSPath()); got != inode(t, p.UserNSPath()) {
		t.Error("the network namespace is not owned by the pod's user namespace")
	}
	if err := m.Remove(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// A pod with its own user namespace is rolled back from any stage, with its pause-first order.
func TestUserNamespacePodRollback(t *testing.T) {
	e := userNSEnv(t)
	m := e.manager(t)
	cfg := Config{ID: testID(), UserNS: testUserNS}
	names := func(ss []stage) (out []string) {
		for _, s := range ss {
			out = append(out, s.name)
		}
		return out
	}
	want := []string{"record", "cgroup", "monitor", "namespaces", "configure namespaces", "network", "shm", "network ready", "files", "ready"}
	if got := names(m.podStages(&Pod{cfg: cfg}, "")); !slices.Equal(got, want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	for _, stage := range want[:len(want)-1] {
		t.Run(stage, func(t *testing.T) {
			m.afterStage = func(s string) error {
				if s == stage {
					return errors.New("injected")
				}
				return nil
			}
			defer func() { m.afterStage = nil }()
			cfg.ID = testID()
			if _, err := m.Create(context.Background(), cfg); err == nil {
				t.Fatal("Create succeeded")
			}
			assertGone(t, &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID)}, nil)
			if n := len(e.mons.live); n != 0 {
				t.Errorf("%d monitors left running", n)
			}
		})
	}
}

func TestUserNamespaceValidation(t *testing.T) {
	short := []IDMapping{{ContainerID: 0, HostID: 100000, Size: 1000}}
	tests := map[string]Config{
		"no uid mappings":  {UserNS: &UserNamespace{GIDs: testUserNS.GIDs}},
		"no gid mappings":  {UserNS: &UserNamespace{UIDs: testUserNS.UIDs}},
		"0 not mapped":     {UserNS: &UserNamespace{UIDs: []IDMapping{{ContainerID: 1, HostID: 1, Size: 70000}}, GIDs: testUserNS.GIDs}},
		"pause not mapped": {UserNS: &UserNamespace{UIDs: short, GIDs: short}},
		"host PID":         {UserNS: testUserNS, Namespaces: NamespaceOptions{PID: NamespaceNode}},
		"host IPC":         {UserNS: testUserNS, Namespaces: NamespaceOptions{IPC: NamespaceNode}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			cfg.ID = "p1"
			if err := cfg.validate(); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "userns_options") {
				t.Errorf("validate() = %v, want InvalidArgument naming userns_options", err)
			}
		})
	}
	ok := Config{ID: "p1", UserNS: testUserNS, Namespaces: NamespaceOptions{Network: NamespaceNode}}
	if err := ok.validate(); err != nil {
		t.Errorf("host network with a user namespace: %v", err)
	}
}

func TestProbeUserNamespaces(t *testing.T) {
	e := newEnv(t)
	if err := ProbeUserNamespaces(e.stateDir); err != nil {
		t.Skip(err) // a kernel or filesystem without them
	}
	m := e.manager(t)
	if err := m.UserNamespaces(); err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Errorf("pods dir below a private dir: %v, want not searchable", err)
	}
	searchable(t, e.stateDir)
	if err := m.UserNamespaces(); err != nil {
		t.Error(err)
	}
	// The state dir as berthd makes it: 0710 to the userns group, not searchable by others.
	if err := privdir.Make(e.stateDir, testUsernsGID); err != nil {
		t.Fatal(err)
	}
	if err := m.UserNamespaces(); err != nil {
		t.Errorf("state dir 0710 to the userns group: %v", err)
	}
	if err := privdir.Make(e.stateDir, testUsernsGID+1); err != nil {
		t.Fatal(err)
	}
	if err := m.UserNamespaces(); err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Errorf("state dir 0710 to another group: %v, want not searchable", err)
	}
	noGroup, err := New(Options{StateDir: e.stateDir, Monitors: e.mons})
	if err != nil {
		t.Fatal(err)
	}
	if err := noGroup.UserNamespaces(); err == nil || !strings.Contains(err.Error(), "userns_group") {
		t.Errorf("no userns group: %v, want an error naming userns_group", err)
	}
	if st := mode(t, filepath.Join(e.stateDir, "pods")); st != "700 0:0" {
		t.Errorf("pods dir without a userns group: %s, want 700 0:0", st)
	}
}

// mode is path's permissions and owner, "710 0:4242".
func mode(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%o %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
}
