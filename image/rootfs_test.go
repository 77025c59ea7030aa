package image

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/kernel"
)

// overlayModes runs f with each way berth mounts overlays: the new mount API where the kernel has "lowerdir+"
// (Linux 6.8), and mount(2)'s option string, which older kernels need. Both run on any kernel that has lowerdir+.
func overlayModes(t *testing.T, f func(t *testing.T, legacy bool)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "lowerdir+", true: "mount(2)"}[legacy], func(t *testing.T) {
			if !legacy && kernel.OverlayAppend() != nil {
				t.Skipf("kernel %s: %v", kernel.Release(), kernel.OverlayAppend())
			}
			if legacy {
				overlayAppend = func() error { return errors.New("no lowerdir+ (test)") }
				t.Cleanup(func() { overlayAppend = kernel.OverlayAppend })
			}
			f(t, legacy)
		})
	}
}

// Deep images mount: 60 layers whose absolute lower dirs are far past one page of mount options, and 400 (near
// overlayfs's limit of 500), which mount(2) takes only by descriptor; a root dir with a ':' takes that path too.
// Upper layers win, writes land in the upper dir, and unmounting is idempotent.
func TestMountRootfsDeep(t *testing.T) {
	overlayModes(t, func(t *testing.T, legacy bool) {
		for _, tc := range []struct {
			layers int
			dir    string
		}{{60, "with-a-rather-long-directory-name-to-pad-paths"}, {400, "x"}, {3, "a:b"}} {
			t.Run(fmt.Sprint(tc.layers, tc.dir), func(t *testing.T) { testMountRootfsDeep(t, tc.layers, tc.dir) })
		}
	})
}

func testMountRootfsDeep(t *testing.T, layers int, dir string) {
	root := t.TempDir()
	s := &Service{root: root, snapshots: filepath.Join(root, "snapshots", dir)}
	var img Image
	for i := range layers {
		l := Layer{ChainID: digest.FromString(fmt.Sprint(i))}
		dir := s.snapshotDir(l.ChainID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("layer-%d", i)), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "top"), []byte(fmt.Sprint(i)), 0o644)
		img.Layers = append(img.Layers, l)
	}
	target := filepath.Join(root, "rootfs")
	if err := s.MountRootfs(img, filepath.Join(root, "upper"), filepath.Join(root, "work"), target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountRootfs(target) })
	if b, _ := os.ReadFile(filepath.Join(target, "top")); string(b) != fmt.Sprint(layers-1) {
		t.Errorf("top = %q, want the top-most layer's %d", b, layers-1)
	}
	for _, f := range []string{"layer-0", fmt.Sprintf("layer-%d", layers-1)} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Error(err)
		}
	}
	os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
	if _, err := os.Stat(filepath.Join(root, "upper", "new")); err != nil {
		t.Errorf("write did not land in upper: %v", err)
	}
	for range 2 {
		if err := UnmountRootfs(target); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "top")); err == nil {
		t.Error("still mounted")
	}
}

// A writable layer is mounted volatile (no sync of root_dir's filesystem at unmount) unless SyncWritableLayers
// asks for syncing mounts; 3 layers take mount(2)'s path names, 60 its descriptors.
func TestMountRootfsVolatile(t *testing.T) {
	overlayModes(t, func(t *testing.T, legacy bool) {
		for _, layers := range []int{3, 60} {
			for _, sync := range []bool{false, true} {
				t.Run(fmt.Sprintf("%d layers sync=%v", layers, sync), func(t *testing.T) {
					root := t.TempDir()
					s := &Service{root: root, snapshots: filepath.Join(root, "snapshots", strings.Repeat("d", 40)), syncLayers: sync}
					var img Image
					for i := range layers {
						l := Layer{ChainID: digest.FromString(fmt.Sprint(i))}
						if err := os.MkdirAll(s.snapshotDir(l.ChainID), 0o755); err != nil {
							t.Fatal(err)
						}
						img.Layers = append(img.Layers, l)
					}
					target := filepath.Join(root, "rootfs")
					if err := s.MountRootfs(img, filepath.Join(root, "upper"), filepath.Join(root, "work"), target); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { UnmountRootfs(target) })
					// Linux 6.6 shows it as fsync=volatile, earlier kernels as volatile.
					opts := superOptions(t, target)
					if volatile := slices.Contains(opts, "volatile") || slices.Contains(opts, "fsync=volatile"); volatile == sync {
						t.Errorf("volatile = %v, want %v (options %v)", volatile, !sync, opts[len(opts)-3:])
					}
				})
			}
		}
	})
}

// superOptions are the filesystem options of the mount at target, from /proc/self/mountinfo.
func superOptions(t *testing.T, target string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == target {
			return strings.Split(f[len(f)-1], ",")
		}
	}
	t.Fatalf("%s is not a mount point", target)
	return nil
}

// More layers than one page of descriptors holds: a clear error, nothing mounted.
func TestMountRootfsTooDeepForMount(t *testing.T) {
	overlayModes(t, func(t *testing.T, legacy bool) {
		if !legacy {
			t.Skip("lowerdir+ has no option string to overflow")
		}
		root := t.TempDir()
		s := &Service{root: root, snapshots: filepath.Join(root, "snapshots")}
		var img Image
		for i := range 1500 {
			l := Layer{ChainID: digest.FromString(fmt.Sprint(i))}
			os.MkdirAll(s.snapshotDir(l.ChainID), 0o755)
			img.Layers = append(img.Layers, l)
		}
		target := filepath.Join(root, "rootfs")
		err := s.MountRootfs(img, filepath.Join(root, "upper"), filepath.Join(root, "work"), target)
		if err == nil || !strings.Contains(err.Error(), "1500 layers do not fit") {
			UnmountRootfs(target)
			t.Fatalf("err = %v, want 1500 layers do not fit", err)
		}
	})
}

// userNamespace starts a process in a new user namespace mapping 0-65535 to hostID and returns its namespace file.
func userNamespace(t *testing.T, hostID int) string {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	if err := cmd.Start(); err != nil {
		t.Skipf("user namespaces: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid)
}

// twoLayers makes an image of two layers: /etc/passwd owned by root, /data owned by 1000, and /escape -> /.
func twoLayers(t *testing.T, s *Service) Image {
	t.Helper()
	var img Image
	for i, files := range []map[string]int{{"etc/passwd": 0, "bin/sh": 0}, {"data": 1000}} {
		l := Layer{ChainID: digest.FromString(fmt.Sprint("layer", i))}
		dir := s.snapshotDir(l.ChainID)
		for name, owner := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
		img.Layers = append(img.Layers, l)
	}
	if err := os.Symlink("/", filepath.Join(s.snapshotDir(img.Layers[1].ChainID), "escape")); err != nil {
		t.Fatal(err)
	}
	return img
}

func owner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// In a user namespace the layers are idmapped: the image's root files belong to the namespace's root (host id
// 100000), and the upper dir too, so what the container writes is owned by the ids it runs as.
func TestMountRootfsMapped(t *testing.T) {
	overlayModes(t, testMountRootfsMapped)
}

func testMountRootfsMapped(t *testing.T, legacy bool) {
	root := t.TempDir()
	s := &Service{root: root, snapshots: filepath.Join(root, "snapshots")}
	img := twoLayers(t, s)
	idmap := &IDMap{UserNS: userNamespace(t, 100000), UID: 100000, GID: 100000}
	target := filepath.Join(root, "rootfs")
	err := s.MountRootfsMapped(img, filepath.Join(root, "upper"), filepath.Join(root, "work"), target, idmap)
	if legacy {
		// Without lowerdir+ idmapped layers cannot be stacked: refused, and user namespaces advertised off.
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("err = %v, want FailedPrecondition", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountRootfs(target) })
	for path, want := range map[string]uint32{"": 100000, "etc/passwd": 100000, "data": 101000} {
		if uid, gid := owner(t, filepath.Join(target, path)); uid != want || gid != want {
			t.Errorf("/%s owned by %d:%d, want %d", path, uid, gid, want)
		}
	}
	// A copied-up file keeps the mapped owner on disk.
	if err := os.Chmod(filepath.Join(target, "etc/passwd"), 0o600); err != nil {
		t.Fatal(err)
	}
	if uid, _ := owner(t, filepath.Join(root, "upper/etc/passwd")); uid != 100000 {
		t.Errorf("copied-up /etc/passwd owned by %d on disk, want 100000", uid)
	}
}

func TestMountReadOnly(t *testing.T) {
	overlayModes(t, testMountReadOnly)
}

func testMountReadOnly(t *testing.T, legacy bool) {
	root := t.TempDir()
	s := &Service{root: root, snapshots: filepath.Join(root, "snapshots")}
	img := twoLayers(t, s)
	oneLayer := Image{Layers: img.Layers[:1]}
	userns := userNamespace(t, 200000)
	tests := map[string]struct {
		img      Image
		sub      string
		idmap    *IDMap
		want     string // a file below the target
		wantUID  uint32
		notFound bool
	}{
		"whole image":           {img: img, want: "etc/passwd"},
		"one layer":             {img: oneLayer, want: "bin/sh"},
		"sub dir":               {img: img, sub: "etc", want: "passwd"},
		"sub file":              {img: img, sub: "data", want: "", wantUID: 1000},
		"symlink stays inside":  {img: img, sub: "escape/etc", want: "passwd"},
		"missing sub path":      {img: img, sub: "nope", notFound: true},
		"sub path through file": {img: img, sub: "data/x", notFound: true},
		"idmapped":              {img: img, sub: "etc", want: "passwd", idmap: &IDMap{UserNS: userns}, wantUID: 200000},
	}
	i := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i++
			target := filepath.Join(root, "volumes", fmt.Sprint(i))
			err := s.MountReadOnly(tc.img, tc.sub, target, tc.idmap)
			if legacy && tc.idmap != nil {
				if !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Fatalf("err = %v, want FailedPrecondition", err)
				}
				return
			}
			if tc.notFound {
				if !errors.Is(err, errdefs.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { UnmountRootfs(target) })
			file := filepath.Join(target, tc.want)
			if _, err := os.Stat(file); err != nil {
				t.Fatal(err)
			}
			if uid, _ := owner(t, file); uid != tc.wantUID {
				t.Errorf("owner %d, want %d", uid, tc.wantUID)
			}
			if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("write into the volume: %v, want EROFS", err)
			}
		})
	}
	// Sub paths are cloned from a staging mount, which is gone afterwards, mount and dir.
	if left, _ := filepath.Glob(filepath.Join(root, "volumes", ".staging-*")); len(left) > 0 {
		t.Errorf("staging dirs left: %v", left)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), ".staging-") {
		t.Error("a staging mount is left")
	}
}
