package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFile(t *testing.T) {
	cases := map[string]struct {
		old   *string // content of an existing file, nil: none
		perm  fs.FileMode
		umask int
	}{
		"new private file":         {perm: 0o600},
		"new readable file":        {perm: 0o644},
		"mode not masked by umask": {perm: 0o666, umask: 0o077},
		"executable":               {perm: 0o755},
		"existing file replaced":   {old: ptr("old content, longer than the new"), perm: 0o640},
		"setuid kept":              {perm: 0o755 | fs.ModeSetuid},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if tc.old != nil {
				writeOld(t, p, *tc.old)
			}
			old := syscall.Umask(tc.umask)
			err := WriteFile(p, []byte("new"), tc.perm)
			syscall.Umask(old)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != "new" {
				t.Errorf("content %q (%v), want %q", b, err, "new")
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.perm {
				t.Errorf("mode %s, want %s", fi.Mode(), tc.perm)
			}
			assertNoTemp(t, dir)
		})
	}
}

// A write failing at any step leaves the old file as it was (or no file) and no temp file, and names the path;
// once renamed, a failed directory sync leaves the new file and says so (ErrUnsynced).
func TestWriteFailure(t *testing.T) {
	for _, step := range []string{"create", "write", "sync", "rename", "sync-dir"} {
		for _, existed := range []bool{true, false} {
			name := step + "/new"
			if existed {
				name = step + "/replace"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				p := filepath.Join(dir, "f")
				if existed {
					writeOld(t, p, "old")
				}
				injected := errors.New("injected")
				err := Write(p, []byte("new"), Options{Perm: 0o600, BeforeStep: func(s string) error {
					if s == step {
						return injected
					}
					return nil
				}})
				if !errors.Is(err, injected) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want the injected error naming %s", err, p)
				}
				if got := errors.Is(err, ErrUnsynced); got != (step == "sync-dir") {
					t.Errorf("ErrUnsynced = %v at step %s", got, step)
				}
				b, rerr := os.ReadFile(p)
				switch {
				case step == "sync-dir":
					if string(b) != "new" {
						t.Errorf("after a failed dir sync the file holds %q (%v), want the new content", b, rerr)
					}
				case existed:
					if string(b) != "old" {
						t.Errorf("old file holds %q (%v), want it unchanged", b, rerr)
					}
				case !errors.Is(rerr, fs.ErrNotExist):
					t.Errorf("a failed first write left a file: %q %v", b, rerr)
				}
				assertNoTemp(t, dir)
			})
		}
	}
}

// Prepare runs on the temp file before the rename, and its error aborts the write like any other.
func TestWritePrepare(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeOld(t, p, "old")
	var prepared string
	err := Write(p, []byte("new"), Options{Perm: 0o644, Prepare: func(f *os.File) error {
		prepared = f.Name()
		return errors.New("prepare failed")
	}})
	if err == nil || !strings.Contains(err.Error(), "prepare failed") {
		t.Fatalf("error %v, want Prepare's", err)
	}
	if filepath.Dir(prepared) != dir || !strings.HasPrefix(filepath.Base(prepared), TempPrefix) {
		t.Errorf("Prepare got %s, want a temp file in %s", prepared, dir)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file holds %q after a failed Prepare", b)
	}
	assertNoTemp(t, dir)
}

func TestWriteMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none", "f")
	if err := WriteFile(p, nil, 0o600); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Errorf("error %v, want ErrNotExist naming %s", err, p)
	}
}

func ptr[T any](v T) *T { return &v }

func writeOld(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}
