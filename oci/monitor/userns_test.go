package monitor

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/privdir"
)

func TestUserNamespaceFlags(t *testing.T) {
	tests := map[string]UserNamespace{
		"none":          {},
		"one mapping":   {UIDs: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}, GIDs: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}},
		"with unshare":  {UIDs: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1, Size: 2}}, GIDs: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1, Size: 2}}, Unshare: []string{"net", "ipc", "uts"}},
		"many mappings": {UIDs: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65535}}, GIDs: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000, Size: 65536}}},
	}
	for name, u := range tests {
		t.Run(name, func(t *testing.T) {
			var got UserNamespace
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			got.flags(fs)
			if err := fs.Parse(u.args()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, u) {
				t.Errorf("round trip of %v = %+v, want %+v", u.args(), got, u)
			}
		})
	}
	for _, bad := range [][]string{{"-pause-uids", "0:1"}, {"-pause-uids", "0:x:1"}, {"-pause-gids", "0:1:-1"}, {"-pause-unshare", "net,mnt"}} {
		var u UserNamespace
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		u.flags(fs)
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// The pause process of a pod with its own user namespace is in a new user namespace with the pod's mappings, which
// owns its PID namespace and the network namespace made with it; it runs as the namespace's 65535.
func TestPauseUserNamespace(t *testing.T) {
	e := newEnv(t)
	// The pause process chroots below the test dir as an id of the user namespace: make the way there searchable.
	for _, d := range []string{e.dir, filepath.Dir(e.dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	o := e.startOptions("p1", true)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	o.PauseUserNS = UserNamespace{UIDs: m, GIDs: m, Unshare: []string{"net"}}
	// As sandbox makes them: the pods dir 0710 to the userns group, which the monitor is given and the pause process
	// carries there, and the pod dir 0710 to the namespace's root.
	const usernsGID = 4242
	if err := privdir.Make(filepath.Dir(o.Dir), usernsGID); err != nil {
		t.Fatal(err)
	}
	if err := privdir.Make(o.Dir, 100000); err != nil {
		t.Fatal(err)
	}
	o.Groups = []uint32{usernsGID}
	c, err := Start(ctxT(t, 20*time.Second), o)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(o.Dir, LogFileName))
		t.Fatalf("%v; monitor.log:\n%s", err, log)
	}
	t.Cleanup(func() { e.shutdown(c) })
	pp := c.PausePid()
	if pp == 0 {
		t.Fatal("no pause process")
	}
	if uid := procStatus(t, pp, "Uid"); uid != "165535\t165535\t165535\t165535" {
		t.Errorf("pause uid %q, want the user namespace's 65535", uid)
	}
	for path, want := range map[string]string{filepath.Join(o.Dir, PauseDirName): "710 0:100000",
		filepath.Join(o.Dir, SocketName): "600 0:0"} {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%o %d:%d", st.Mode&0o7777, st.Uid, st.Gid); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if groups := procStatus(t, pp, "Groups"); groups != "" {
		t.Errorf("pause keeps the groups %q, want none", groups)
	}
	if ns := strings.Fields(procStatus(t, pp, "NSpid")); len(ns) != 2 || ns[1] != "1" {
		t.Errorf("pause NSpid %v, want PID 1 of a new namespace", ns)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pp)); err != nil || strings.Join(strings.Fields(string(b)), " ") != "0 100000 65536" {
		t.Errorf("pause uid_map %q (%v)", b, err)
	}
	userns := nsInode(t, fmt.Sprintf("/proc/%d/ns/user", pp))
	if userns == nsInode(t, "/proc/self/ns/user") {
		t.Fatal("pause is in the host's user namespace")
	}
	for _, ns := range []string{"pid", "net"} {
		if owner := nsOwnerInode(t, fmt.Sprintf("/proc/%d/ns/%s", pp, ns)); owner != userns {
			t.Errorf("pause's %s namespace is owned by user namespace %d, want its own %d", ns, owner, userns)
		}
	}
	if nsInode(t, fmt.Sprintf("/proc/%d/ns/ipc", pp)) != nsInode(t, "/proc/self/ns/ipc") {
		t.Error("pause got an IPC namespace it was not asked for")
	}
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// nsOwnerInode returns the inode of the user namespace owning the namespace at path (ioctl NS_GET_USERNS).
func nsOwnerInode(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, 0xb701) // NS_GET_USERNS
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
