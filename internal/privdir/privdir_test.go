package privdir

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const testGID = 4321

// withUmask runs fn under umask mask: the modes must not depend on it.
func withUmask(t *testing.T, mask int, fn func()) {
	t.Helper()
	old := unix.Umask(mask)
	defer unix.Umask(old)
	fn()
}

func owner(t *testing.T, p string) (fs.FileMode, uint32) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid
}

func TestMake(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	egid := uint32(os.Getegid())
	for name, tc := range map[string]struct {
		setup    func(t *testing.T, dir string) // before Make(dir/a/b)
		gid      int
		wantMode fs.FileMode
		wantGID  uint32
		// the parent dir/a: made with the leaf's mode and group, or left as setup made it
		parentMode fs.FileMode
		parentGID  uint32
	}{
		"new private":             {gid: Private, wantMode: 0o700, wantGID: egid, parentMode: 0o700, parentGID: egid},
		"new shared":              {gid: testGID, wantMode: 0o710, wantGID: testGID, parentMode: 0o710, parentGID: testGID},
		"existing 0755 tightened": {setup: mkdirs(0o755), gid: Private, wantMode: 0o700, wantGID: egid, parentMode: 0o755, parentGID: egid},
		"existing 0711 shared":    {setup: mkdirs(0o711), gid: testGID, wantMode: 0o710, wantGID: testGID, parentMode: 0o711, parentGID: egid},
		"existing shared made private": {setup: func(t *testing.T, dir string) {
			mkdirs(0o755)(t, dir)
			os.Chown(filepath.Join(dir, "a", "b"), 0, testGID)
		}, gid: Private, wantMode: 0o700, wantGID: egid, parentMode: 0o755, parentGID: egid},
	} {
		for _, mask := range []int{0, 0o022, 0o077} {
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				if tc.setup != nil {
					tc.setup(t, dir)
				}
				withUmask(t, mask, func() {
					if err := Make(filepath.Join(dir, "a", "b"), tc.gid); err != nil {
						t.Fatal(err)
					}
				})
				if mode, gid := owner(t, filepath.Join(dir, "a", "b")); mode != tc.wantMode || gid != tc.wantGID {
					t.Errorf("umask %#o: dir %#o group %d, want %#o group %d", mask, mode, gid, tc.wantMode, tc.wantGID)
				}
				if mode, gid := owner(t, filepath.Join(dir, "a")); mode != tc.parentMode || gid != tc.parentGID {
					t.Errorf("umask %#o: parent %#o group %d, want %#o group %d", mask, mode, gid, tc.parentMode, tc.parentGID)
				}
			})
		}
	}
}

// mkdirs makes dir/a/b with mode, whatever the umask.
func mkdirs(mode fs.FileMode) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		for _, p := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
			if err := os.Mkdir(p, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestMakeRefuses(t *testing.T) {
	for name, setup := range map[string]func(dir string) error{
		"file":    func(dir string) error { return os.WriteFile(filepath.Join(dir, "x"), nil, 0o644) },
		"symlink": func(dir string) error { return os.Symlink(dir, filepath.Join(dir, "x")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := setup(dir); err != nil {
				t.Fatal(err)
			}
			before, _ := owner(t, dir)
			if err := Make(filepath.Join(dir, "x"), Private); err == nil {
				t.Error("Make succeeded")
			}
			if mode, _ := owner(t, dir); mode != before {
				t.Errorf("symlink target's mode changed to %#o", mode)
			}
		})
	}
}

func TestMkdirExists(t *testing.T) {
	dir := t.TempDir()
	if err := Mkdir(filepath.Join(dir, "a"), Private); err != nil {
		t.Fatal(err)
	}
	if err := Mkdir(filepath.Join(dir, "a"), Private); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Mkdir: %v, want fs.ErrExist", err)
	}
}

func TestListen(t *testing.T) {
	for _, mode := range []fs.FileMode{0o600, 0o660} {
		withUmask(t, 0, func() {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.sock")
			if err := os.WriteFile(path, nil, 0o644); err != nil { // a stale file is replaced
				t.Fatal(err)
			}
			ln, err := Listen(path, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			st, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != mode {
				t.Errorf("socket %v, want a socket with mode %#o", st.Mode(), mode)
			}
			go func() {
				if c, err := ln.Accept(); err == nil {
					c.Close()
				}
			}()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("connect through the renamed path: %v", err)
			}
			c.Close()
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("left in %s: %v, want only the socket", dir, ents)
			}
		})
	}
}
