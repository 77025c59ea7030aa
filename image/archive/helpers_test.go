package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	epoch  = time.Unix(1_600_000_000, 0)
	isRoot = os.Geteuid() == 0
)

// ent is one tar entry; Size, Mode, ModTime, Uid and Gid get defaults when left zero.
type ent struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) ent { return ent{tar.Header{Name: name, Typeflag: tar.TypeReg}, body} }
func dir(name string) ent       { return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir}} }
func symlink(name, target string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}}
}
func hardlink(name, target string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

// mkTar builds a tar stream in memory.
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = epoch
		}
		if h.Uid == 0 && h.Gid == 0 && !isRoot {
			h.Uid, h.Gid = os.Getuid(), os.Getgid()
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX // sub-second times and atimes
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %.100q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a temp parent holding the layer dir next to sentinel files that no layer may touch.
type sandbox struct {
	parent, layer string
	before        string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{parent: parent, layer: filepath.Join(parent, "layer")}
	for _, d := range []string{"layer", "sentinel/dir", "lower"} {
		if err := os.MkdirAll(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"sentinel/file": "precious", "sentinel/dir/f": "precious too", "lower/f": "lower"} {
		if err := os.WriteFile(filepath.Join(parent, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("file", filepath.Join(parent, "sentinel/link")); err != nil {
		t.Fatal(err)
	}
	s.before = snapshot(t, parent, "layer")
	return s
}

// check fails the test if anything outside the layer dir changed.
func (s *sandbox) check(t testing.TB) {
	t.Helper()
	if after := snapshot(t, s.parent, "layer"); after != s.before {
		t.Fatalf("outside the layer dir changed:\nbefore:\n%s\nafter:\n%s", s.before, after)
	}
}

// snapshot describes the tree at root (minus the skip subdir): names, types, modes, owners, mtimes, contents.
func snapshot(t testing.TB, root, skip string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == skip {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d %d nlink=%d", rel, info.Mode(), st.Uid, st.Gid, info.ModTime().UnixNano(), st.Nlink)
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func lstat(t testing.TB, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}
