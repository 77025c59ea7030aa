package image

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func modeOf(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%o %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
}

// The dirs made on the way to a writable layer and a rootfs are private whatever the umask (the issue's
// <root>/containers would have been 0755 had the record store not made it first); with an idmap those on the way to
// the rootfs and image volumes are 0710 to the user namespace's root, which must reach them.
func TestMountDirModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for name, idmap := range map[string]*IDMap{"host": nil, "userns": {UID: 100000, GID: 100000}} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			s := &Service{root: root, snapshots: filepath.Join(root, "snapshots")}
			img := twoLayers(t, s)
			if idmap != nil {
				idmap.UserNS = userNamespace(t, 100000)
			}
			layer := filepath.Join(root, "containers", "c1")
			bundle := filepath.Join(root, "pod", "containers", "c1")
			if err := os.Mkdir(filepath.Join(root, "pod"), 0o700); err != nil {
				t.Fatal(err)
			}
			err := s.MountRootfsMapped(img, filepath.Join(layer, "upper"), filepath.Join(layer, "work"),
				filepath.Join(bundle, "rootfs"), idmap)
			if err != nil {
				t.Skip(err) // a kernel without idmapped layers
			}
			t.Cleanup(func() { UnmountRootfs(filepath.Join(bundle, "rootfs")) })
			vol := filepath.Join(bundle, "volumes", "0")
			if err := s.MountReadOnly(img, "etc/passwd", vol, idmap); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { UnmountRootfs(vol) })
			onTheWay := "700 0:0"
			if idmap != nil {
				onTheWay = "710 0:100000"
			}
			for path, want := range map[string]string{
				filepath.Join(root, "containers"):        "700 0:0",
				layer:                                    "700 0:0",
				filepath.Join(layer, "work"):             "700 0:0",
				filepath.Join(root, "pod", "containers"): onTheWay,
				bundle:                                   onTheWay,
				filepath.Join(bundle, "volumes"):         onTheWay,
			} {
				if got := modeOf(t, path); got != want {
					t.Errorf("%s: %s, want %s", path, got, want)
				}
			}
		})
	}
}
