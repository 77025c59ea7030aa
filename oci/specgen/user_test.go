package specgen

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
# a comment
broken-line
default-user:x:1000:1000::/home/default-user:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
`
	testGroup = `root:x:0:
wheel:x:10:root
www-data:x:33:
default-user:x:1000:default-user
group-defined-in-image:x:50000:default-user,www-data
staff:x:1004:
nogroup:x:65534:
`
)

// testRootfs makes a rootfs holding the given files (path → content).
func testRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveUser(t *testing.T) {
	rootfs := testRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	for _, tc := range []struct {
		name      string
		imageUser string
		sc        *LinuxContainerSecurityContext
		want      specs.User
	}{
		{"root by default", "", nil, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
		{"image uid", "1000", nil, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 50000}}},
		{"image uid unknown", "1002", nil, specs.User{UID: 1002, GID: 0, AdditionalGids: []uint32{0}}},
		{"image name", "www-data", nil, specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 50000}}},
		{"image uid:gid", "1003:1004", nil, specs.User{UID: 1003, GID: 1004, AdditionalGids: []uint32{1004}}},
		{"image name:gid", "www-data:1004", nil, specs.User{UID: 33, GID: 1004, AdditionalGids: []uint32{1004, 50000}}},
		{"image name:group", "www-data:staff", nil, specs.User{UID: 33, GID: 1004, AdditionalGids: []uint32{1004, 50000}}},
		{"run_as_user overrides image", "www-data", &LinuxContainerSecurityContext{RunAsUser: i64(65534)},
			specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}}},
		{"run_as_username", "", &LinuxContainerSecurityContext{RunAsUsername: "nobody"},
			specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}}},
		{"run_as_group", "www-data:staff", &LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(2000)},
			specs.User{UID: 1000, GID: 2000, AdditionalGids: []uint32{2000, 50000}}},
		{"supplemental groups merge", "", &LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{1234}},
			specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 1234, 50000}}},
		{"supplemental groups strict", "", &LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{1234, 1000},
			SupplementalGroupsPolicy: SupplementalGroupsPolicyStrict},
			specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 1234}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveUser(rootfs, tc.imageUser, tc.sc)
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.want.UID || got.GID != tc.want.GID || !slices.Equal(got.AdditionalGids, tc.want.AdditionalGids) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResolveUserErrors(t *testing.T) {
	rootfs := testRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	for _, tc := range []struct {
		name      string
		imageUser string
		sc        *LinuxContainerSecurityContext
		field     string
	}{
		{"group without user", "www-data", &LinuxContainerSecurityContext{RunAsGroup: i64(1)}, "linux.security_context.run_as_group"},
		{"unknown username", "", &LinuxContainerSecurityContext{RunAsUsername: "ghost"}, "linux.security_context.run_as_username"},
		{"user and username", "", &LinuxContainerSecurityContext{RunAsUser: i64(1), RunAsUsername: "daemon"}, "linux.security_context.run_as_username"},
		{"negative uid", "", &LinuxContainerSecurityContext{RunAsUser: i64(-1)}, "linux.security_context.run_as_user"},
		{"huge gid", "", &LinuxContainerSecurityContext{RunAsUser: i64(1), RunAsGroup: i64(1 << 40)}, "linux.security_context.run_as_group"},
		{"negative supplemental group", "", &LinuxContainerSecurityContext{SupplementalGroups: []int64{-5}}, "linux.security_context.supplemental_groups"},
		{"unknown image user", "ghost", nil, "image config User"},
		{"unknown image group", "daemon:ghosts", nil, "image config User"},
		{"malformed image user", "a:b:c", nil, "image config User"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ResolveUser(rootfs, tc.imageUser, tc.sc)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}

func TestResolveUserWithoutFiles(t *testing.T) {
	rootfs := t.TempDir()
	got, err := ResolveUser(rootfs, "", &LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{5}})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != 1000 || got.GID != 0 || !slices.Equal(got.AdditionalGids, []uint32{0, 5}) {
		t.Errorf("got %+v", got)
	}
	if _, err := ResolveUser(rootfs, "", &LinuxContainerSecurityContext{RunAsUsername: "nobody"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("user name without /etc/passwd: err = %v, want InvalidArgument", err)
	}
}

// An image must not make berth read the host's files through a symlink.
func TestResolveUserStaysInRootfs(t *testing.T) {
	outside := testRootfs(t, map[string]string{"passwd": "evil:x:4242:4242::/:/bin/sh\n"})
	for _, target := range []string{filepath.Join(outside, "passwd"), "../../../../../../../../" + filepath.Join(outside, "passwd")} {
		rootfs := testRootfs(t, nil)
		if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(rootfs, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		u, err := ResolveUser(rootfs, "", &LinuxContainerSecurityContext{RunAsUsername: "evil"})
		if err == nil {
			t.Fatalf("symlink to %s: resolved %+v from outside the rootfs", target, u)
		}
	}
}

func TestResolveUserFIFO(t *testing.T) {
	rootfs := testRootfs(t, map[string]string{"etc/group": testGroup})
	if err := syscall.Mkfifo(filepath.Join(rootfs, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ResolveUser(rootfs, "", &LinuxContainerSecurityContext{RunAsUser: i64(1)})
		done <- err
	}()
	select {
	case err := <-done:
		if !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("err = %v, want FailedPrecondition", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ResolveUser blocked on a FIFO /etc/passwd")
	}
}

// TestResolveUserOpensOnlyRegularFiles: a node other than a regular file at /etc/passwd or /etc/group is refused
// without being opened (on the host, by root: opening a device can have effects, e.g. a watchdog's). inotify sees
// every real open of the node; the O_PATH open that lets berth look at it first is not one.
func TestResolveUserOpensOnlyRegularFiles(t *testing.T) {
	for name, tc := range map[string]struct {
		make func(t *testing.T, p string)
		root bool
	}{
		"fifo": {make: func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		"character device": {root: true, make: func(t *testing.T, p string) {
			if err := syscall.Mknod(p, syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}},
		"directory": {make: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		for _, file := range []string{"etc/passwd", "etc/group"} {
			for _, via := range []string{"", " through an absolute symlink"} {
				t.Run(name+" at /"+file+via, func(t *testing.T) {
					if tc.root && os.Geteuid() != 0 {
						t.Skip("mknod needs root")
					}
					rootfs := testRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
					node := filepath.Join(rootfs, file)
					if err := os.Remove(node); err != nil {
						t.Fatal(err)
					}
					if via != "" {
						if err := os.Symlink("/srv/node", node); err != nil {
							t.Fatal(err)
						}
						node = filepath.Join(rootfs, "srv/node")
						if err := os.Mkdir(filepath.Dir(node), 0o755); err != nil {
							t.Fatal(err)
						}
					}
					tc.make(t, node)
					in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
					if err != nil {
						t.Fatal(err)
					}
					defer unix.Close(in)
					if _, err := unix.InotifyAddWatch(in, node, unix.IN_OPEN); err != nil {
						t.Fatal(err)
					}
					_, err = ResolveUser(rootfs, "", &LinuxContainerSecurityContext{RunAsUsername: "www-data"})
					if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "not a regular file") {
						t.Errorf("err = %v, want FailedPrecondition: not a regular file", err)
					}
					buf := make([]byte, 4096)
					if n, _ := unix.Read(in, buf); n > 0 {
						t.Errorf("ResolveUser opened the %s at /%s%s before refusing it", name, file, via)
					}
				})
			}
		}
	}
}

// TestResolveUserSymlinks: /etc/passwd and /etc/group may be symlinks, absolute or relative; they resolve inside
// the image as they would in the container, whatever their "..".
func TestResolveUserSymlinks(t *testing.T) {
	for name, target := range map[string]string{
		"absolute":                 "/usr/lib/db/passwd",
		"relative":                 "../usr/lib/db/passwd",
		"relative past the root":   "../../../../../../usr/lib/db/passwd",
		"through a directory link": "/lib/db/passwd",
	} {
		t.Run(name, func(t *testing.T) {
			rootfs := testRootfs(t, map[string]string{"usr/lib/db/passwd": testPasswd, "usr/lib/db/group": testGroup})
			mustSymlink := func(target, p string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(rootfs, p)); err != nil {
					t.Fatal(err)
				}
			}
			mustSymlink("/usr/lib", "lib")
			mustSymlink(target, "etc/passwd")
			mustSymlink(strings.TrimSuffix(target, "passwd")+"group", "etc/group")
			u, err := ResolveUser(rootfs, "", &LinuxContainerSecurityContext{RunAsUsername: "default-user"})
			if err != nil {
				t.Fatal(err)
			}
			if u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{1000, 50000}) {
				t.Errorf("got %+v, want uid 1000, gid 1000, groups [1000 50000]", u)
			}
		})
	}
}
