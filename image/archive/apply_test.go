package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

func apply(t *testing.T, dir string, opts Options, ents ...ent) (int64, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(mkTar(t, ents...)), opts)
}

func TestApplyPreserves(t *testing.T) {
	at := func(sec int64) time.Time { return time.Unix(sec, 123456789) }
	withMeta := func(e ent, mode int64, uid, gid int, mtime, atime time.Time, xattrs map[string]string) ent {
		e.hdr.Mode, e.hdr.ModTime, e.hdr.AccessTime = mode, mtime, atime
		if isRoot {
			e.hdr.Uid, e.hdr.Gid = uid, gid
		}
		for k, v := range xattrs {
			if e.hdr.PAXRecords == nil {
				e.hdr.PAXRecords = map[string]string{}
			}
			e.hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		return e
	}
	xattrs := map[string]string{"user.origin": "layer"}
	if isRoot {
		xattrs["trusted.berth"] = "t"
		xattrs["security.capability"] = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	}
	ents := []ent{
		withMeta(dir("d/"), 0o750, 1000, 1001, at(1000), at(1001), map[string]string{"user.d": "1"}),
		withMeta(reg("d/suid", "hello"), 0o4755, 1000, 1001, at(2000), at(2001), xattrs),
		withMeta(reg("d/sgid", ""), 0o2711, 0, 50, at(3000), at(3001), nil),
		withMeta(dir("sticky/"), 0o1777, 0, 0, at(4000), at(4001), nil),
		withMeta(symlink("d/link", "suid"), 0o777, 1000, 1001, at(5000), at(5001), nil),
		hardlink("d/hard", "d/suid"),
		withMeta(ent{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}, 0o640, 7, 8, at(6000), at(6001), nil),
		withMeta(reg("nested/deep/file", "x"), 0o600, 0, 0, at(7000), at(7001), nil),
	}
	if isRoot {
		ents = append(ents,
			withMeta(ent{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, 0o666, 0, 0, at(8000), at(8001), nil),
			withMeta(ent{hdr: tar.Header{Name: "loop", Typeflag: tar.TypeBlock, Devmajor: 7, Devminor: 0}}, 0o660, 0, 6, at(9000), at(9001), nil))
	}
	layer := newSandbox(t).layer
	size, err := apply(t, layer, Options{}, ents...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if size != 6 {
		t.Errorf("size = %d, want 6", size)
	}

	tests := []struct {
		path         string
		typ          uint32
		mode         uint32
		uid, gid     uint32
		mtime, atime time.Time
		content      string
		target       string
		xattrs       map[string]string
	}{
		{path: "d", typ: unix.S_IFDIR, mode: 0o750, uid: 1000, gid: 1001, mtime: at(1000), atime: at(1001), xattrs: map[string]string{"user.d": "1"}},
		{path: "d/suid", typ: unix.S_IFREG, mode: 0o4755, uid: 1000, gid: 1001, mtime: at(2000), atime: at(2001), content: "hello", xattrs: xattrs},
		{path: "d/hard", typ: unix.S_IFREG, mode: 0o4755, uid: 1000, gid: 1001, content: "hello"}, // d/suid's atime: read above
		{path: "d/sgid", typ: unix.S_IFREG, mode: 0o2711, uid: 0, gid: 50, mtime: at(3000), atime: at(3001)},
		{path: "sticky", typ: unix.S_IFDIR, mode: 0o1777, mtime: at(4000), atime: at(4001)},
		{path: "d/link", typ: unix.S_IFLNK, mode: 0o777, uid: 1000, gid: 1001, mtime: at(5000), atime: at(5001), target: "suid"},
		{path: "fifo", typ: unix.S_IFIFO, mode: 0o640, uid: 7, gid: 8, mtime: at(6000), atime: at(6001)},
		{path: "nested", typ: unix.S_IFDIR, mode: 0o755},
		{path: "nested/deep/file", typ: unix.S_IFREG, mode: 0o600, mtime: at(7000), atime: at(7001), content: "x"},
	}
	if isRoot {
		tests = append(tests,
			struct {
				path         string
				typ          uint32
				mode         uint32
				uid, gid     uint32
				mtime, atime time.Time
				content      string
				target       string
				xattrs       map[string]string
			}{path: "null", typ: unix.S_IFCHR, mode: 0o666, mtime: at(8000), atime: at(8001)},
		)
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			p := filepath.Join(layer, tc.path)
			st := lstat(t, p)
			if st.Mode&unix.S_IFMT != tc.typ || st.Mode&0o7777 != tc.mode {
				t.Errorf("mode = %#o, want type %#o perm %#o", st.Mode, tc.typ, tc.mode)
			}
			if isRoot && (st.Uid != tc.uid || st.Gid != tc.gid) {
				t.Errorf("owner = %d:%d, want %d:%d", st.Uid, st.Gid, tc.uid, tc.gid)
			}
			if !tc.mtime.IsZero() {
				if got := time.Unix(st.Mtim.Unix()); !got.Equal(tc.mtime) {
					t.Errorf("mtime = %v, want %v", got, tc.mtime)
				}
				if got := time.Unix(st.Atim.Unix()); !got.Equal(tc.atime) {
					t.Errorf("atime = %v, want %v", got, tc.atime)
				}
			}
			if tc.typ == unix.S_IFREG {
				if b, err := os.ReadFile(p); err != nil || string(b) != tc.content {
					t.Errorf("content = %q, %v; want %q", b, err, tc.content)
				}
			}
			if tc.target != "" {
				if got, err := os.Readlink(p); err != nil || got != tc.target {
					t.Errorf("target = %q, %v; want %q", got, err, tc.target)
				}
			}
			for k, want := range tc.xattrs {
				buf := make([]byte, 256)
				n, err := unix.Lgetxattr(p, k, buf)
				if err != nil || string(buf[:n]) != want {
					t.Errorf("xattr %s = %q, %v; want %q", k, buf[:max(n, 0)], err, want)
				}
			}
		})
	}
	if lstat(t, filepath.Join(layer, "d/hard")).Ino != lstat(t, filepath.Join(layer, "d/suid")).Ino {
		t.Error("d/hard is not a hard link of d/suid")
	}
	if isRoot && lstat(t, filepath.Join(layer, "null")).Rdev != unix.Mkdev(1, 3) {
		t.Error("null is not device 1:3")
	}
}

func TestApplyWhiteouts(t *testing.T) {
	if !isRoot {
		t.Skip("whiteouts need mknod and trusted xattrs: run as root")
	}
	layer := newSandbox(t).layer
	_, err := apply(t, layer, Options{},
		dir("a/"), reg("a/.wh.gone", ""), reg("a/.wh..wh..opq", ""), reg("a/kept", "k"),
		reg(".wh..wh.plnk", ""),
		reg("b/.wh.first", ""), reg("b/first", "file after its whiteout"),
		reg("b/second", "file before its whiteout"), reg("b/.wh.second", ""),
		reg(".wh.top", ""), reg(".wh..wh..opq", ""),
		ent{hdr: tar.Header{Name: "c/", Typeflag: tar.TypeDir, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}}},
	)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, p := range []string{"a/gone", "top"} {
		st := lstat(t, filepath.Join(layer, p))
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %#o rdev %d, want a 0:0 char device", p, st.Mode, st.Rdev)
		}
	}
	for p, want := range map[string]bool{"a": true, ".": true, "b": false, "c": false} {
		if got := isOpaquePath(t, filepath.Join(layer, p)); got != want {
			t.Errorf("%s opaque = %v, want %v", p, got, want)
		}
	}
	for _, p := range []string{"a/kept", "b/first", "b/second"} {
		if st := lstat(t, filepath.Join(layer, p)); st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Errorf("%s: mode %#o, want the regular file of this layer", p, st.Mode)
		}
	}
	filepath.Walk(layer, func(p string, _ os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(filepath.Base(p), ".wh.") {
			t.Errorf("whiteout file %s was created", p)
		}
		return nil
	})
}

func isOpaquePath(t *testing.T, p string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, opaqueXattr, buf)
	if err != nil && err != unix.ENODATA {
		t.Fatalf("getxattr %s: %v", p, err)
	}
	return err == nil && string(buf[:n]) == "y"
}

func TestApplyHardLinkLowers(t *testing.T) {
	type lowerFile struct {
		path, body string
		whiteout   bool   // a 0:0 char device
		opaque     bool   // a dir with trusted.overlay.opaque=y
		symlink    string // a symlink to this target
	}
	tests := map[string]struct {
		rootOnly bool
		lowers   [][]lowerFile // top-most first
		ents     []ent
		wantErr  error
		want     string // content (or symlink target) of "new" and "new2"
	}{
		"copied up from the lower": {
			lowers: [][]lowerFile{{{path: "usr/bin/tool", body: "T"}}},
			ents:   []ent{hardlink("new", "usr/bin/tool"), hardlink("new2", "/usr/bin/tool")},
			want:   "T",
		},
		"from a deeper lower": {
			lowers: [][]lowerFile{{{path: "usr/other", body: "O"}}, {{path: "usr/bin/tool", body: "deep"}}},
			ents:   []ent{hardlink("new", "usr/bin/tool"), hardlink("new2", "new")},
			want:   "deep",
		},
		"top-most lower wins": {
			lowers: [][]lowerFile{{{path: "f", body: "top"}}, {{path: "f", body: "bottom"}}},
			ents:   []ent{hardlink("new", "f"), hardlink("new2", "f")},
			want:   "top",
		},
		"symlink copied up": {
			lowers: [][]lowerFile{{{path: "l", symlink: "/etc/passwd"}}},
			ents:   []ent{hardlink("new", "l"), hardlink("new2", "l")},
			want:   "/etc/passwd",
		},
		"this layer wins over lowers": {
			lowers: [][]lowerFile{{{path: "f", body: "lower"}}},
			ents:   []ent{reg("f", "mine"), hardlink("new", "f"), hardlink("new2", "f")},
			want:   "mine",
		},
		"no lowers": {
			ents:    []ent{hardlink("new", "f")},
			wantErr: ErrLowerNeeded,
		},
		"not in any lower": {
			lowers:  [][]lowerFile{{{path: "g", body: "g"}}},
			ents:    []ent{hardlink("new", "f")},
			wantErr: ErrLowerNeeded,
		},
		"whiteout in an upper lower": {
			rootOnly: true,
			lowers:   [][]lowerFile{{{path: "f", whiteout: true}}, {{path: "f", body: "deleted"}}},
			ents:     []ent{hardlink("new", "f")},
			wantErr:  ErrLowerNeeded,
		},
		"whiteout of the parent in an upper lower": {
			rootOnly: true,
			lowers:   [][]lowerFile{{{path: "d", whiteout: true}}, {{path: "d/f", body: "deleted"}}},
			ents:     []ent{hardlink("new", "d/f")},
			wantErr:  ErrLowerNeeded,
		},
		"opaque dir in an upper lower": {
			rootOnly: true,
			lowers:   [][]lowerFile{{{path: "d", opaque: true}}, {{path: "d/f", body: "hidden"}}},
			ents:     []ent{hardlink("new", "d/f")},
			wantErr:  ErrLowerNeeded,
		},
		"whiteout in this layer": {
			rootOnly: true,
			lowers:   [][]lowerFile{{{path: "f", body: "deleted"}}},
			ents:     []ent{reg(".wh.f", ""), hardlink("new", "f")},
			wantErr:  ErrLowerNeeded,
		},
		"symlinked parent in the lower is not followed": {
			lowers:  [][]lowerFile{{{path: "real/f", body: "f"}, {path: "link", symlink: "real"}}},
			ents:    []ent{hardlink("new", "link/f")},
			wantErr: ErrLowerNeeded,
		},
		"link to a directory": {
			lowers:  [][]lowerFile{{{path: "d/f", body: "f"}}},
			ents:    []ent{hardlink("new", "d")},
			wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.rootOnly && !isRoot {
				t.Skip("needs root")
			}
			s := newSandbox(t)
			var lowers []string
			for i, files := range tc.lowers {
				lower := filepath.Join(s.parent, "lowers", string(rune('a'+i)))
				for _, f := range files {
					p := filepath.Join(lower, f.path)
					mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
					switch {
					case f.whiteout:
						mustDo(t, unix.Mknod(p, unix.S_IFCHR, 0))
					case f.opaque:
						mustDo(t, os.Mkdir(p, 0o755))
						mustDo(t, unix.Setxattr(p, opaqueXattr, []byte("y"), 0))
					case f.symlink != "":
						mustDo(t, os.Symlink(f.symlink, p))
					default:
						mustDo(t, os.WriteFile(p, []byte(f.body), 0o751))
						mustDo(t, unix.Setxattr(p, "user.lower", []byte("1"), 0))
						mustDo(t, os.Chtimes(p, time.Unix(42, 0), time.Unix(43, 7)))
					}
				}
				lowers = append(lowers, lower)
			}
			s.before = snapshot(t, s.parent, "layer")
			_, err := apply(t, s.layer, Options{Lowers: lowers}, tc.ents...)
			s.check(t) // lowers untouched
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Apply: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			newPath, new2Path := filepath.Join(s.layer, "new"), filepath.Join(s.layer, "new2")
			st, st2 := lstat(t, newPath), lstat(t, new2Path)
			if st.Ino != st2.Ino {
				t.Errorf("new and new2 are not one inode")
			}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if got, _ := os.Readlink(newPath); got != tc.want {
					t.Errorf("new -> %q, want %q", got, tc.want)
				}
				return
			}
			if b, _ := os.ReadFile(newPath); string(b) != tc.want {
				t.Errorf("new = %q, want %q", b, tc.want)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 2 && len(tc.lowers) > 0 && tc.want != "mine" {
				if st.Mode&0o7777 != 0o751 || st.Mtim.Sec != 43 || st.Mtim.Nsec != 7 {
					t.Errorf("copy-up lost metadata: mode %#o mtime %v", st.Mode, st.Mtim)
				}
				buf := make([]byte, 4)
				if n, err := unix.Getxattr(newPath, "user.lower", buf); err != nil || string(buf[:n]) != "1" {
					t.Errorf("copy-up lost xattr: %q %v", buf[:max(n, 0)], err)
				}
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestApplyReplaces(t *testing.T) {
	tests := map[string]struct {
		ents  []ent
		check func(t *testing.T, layer string)
	}{
		"file replaces dir": {
			ents:  []ent{dir("x/"), reg("x/c", "c"), dir("x/sub/"), reg("x", "file")},
			check: wantContent("x", "file"),
		},
		"dir merges into dir": {
			ents: []ent{dir("x/"), reg("x/c", "c"), {hdr: tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o700}}},
			check: func(t *testing.T, layer string) {
				wantContent("x/c", "c")(t, layer)
				if st := lstat(t, filepath.Join(layer, "x")); st.Mode&0o7777 != 0o700 {
					t.Errorf("x mode %#o, want the later 0700", st.Mode)
				}
			},
		},
		"file replaces file":     {ents: []ent{reg("f", "old"), reg("f", "new")}, check: wantContent("f", "new")},
		"dir replaces file":      {ents: []ent{reg("f", "old"), dir("f/"), reg("f/c", "c")}, check: wantContent("f/c", "c")},
		"symlink replaces file":  {ents: []ent{reg("f", "old"), reg("t", "target"), symlink("f", "t")}, check: wantContent("f", "target")},
		"hardlink replaces file": {ents: []ent{reg("f", "old"), reg("t", "target"), hardlink("f", "t")}, check: wantContent("f", "target")},
		"link to itself":         {ents: []ent{reg("f", "me"), hardlink("f", "f")}, check: wantContent("f", "me")},
		"symlink replaces a dir in use": {
			ents:  []ent{dir("a/"), reg("a/f", "1"), symlink("a", "b"), dir("b/"), reg("a/g", "2")},
			check: wantContent("b/g", "2"),
		},
		"dir times survive children": {
			ents: []ent{{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir, ModTime: time.Unix(1, 0)}}, reg("d/f", "")},
			check: func(t *testing.T, layer string) {
				if st := lstat(t, filepath.Join(layer, "d")); st.Mtim.Sec != 1 {
					t.Errorf("d mtime %v, want 1s", st.Mtim)
				}
			},
		},
		"layer root entry": {
			ents: []ent{{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o711, ModTime: time.Unix(5, 0)}}, reg("f", "")},
			check: func(t *testing.T, layer string) {
				if st := lstat(t, layer); st.Mode&0o7777 != 0o711 || st.Mtim.Sec != 5 {
					t.Errorf("root mode %#o mtime %v, want 0711 at 5s", st.Mode, st.Mtim)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			if _, err := apply(t, s.layer, Options{}, tc.ents...); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			s.check(t)
			tc.check(t, s.layer)
		})
	}
}

func wantContent(p, want string) func(t *testing.T, layer string) {
	return func(t *testing.T, layer string) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(layer, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}

func TestApplyNeedsEmptyDir(t *testing.T) {
	s := newSandbox(t)
	mustDo(t, os.WriteFile(filepath.Join(s.layer, "old"), nil, 0o644))
	_, err := apply(t, s.layer, Options{}, reg("f", ""))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Apply: %v, want %v", err, errdefs.ErrFailedPrecondition)
	}
}

// cancelReader cancels its context after the first read.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.cancel()
	return n, err
}

func TestApplyCancel(t *testing.T) {
	big := mkTar(t, reg("a", strings.Repeat("x", 4<<20)), reg("b", "y"))
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Apply(ctx, newSandbox(t).layer, bytes.NewReader(big), Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply: %v, want %v", err, context.Canceled)
		}
	})
	t.Run("during a file", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		layer := newSandbox(t).layer
		r := &cancelReader{r: bytes.NewReader(big), cancel: cancel}
		if _, err := Apply(ctx, layer, r, Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply: %v, want %v", err, context.Canceled)
		}
		if _, err := os.Lstat(filepath.Join(layer, "b")); err == nil {
			t.Error("b was written after cancellation")
		}
	})
}

func TestApplyReadsToEOF(t *testing.T) {
	tarball := append(mkTar(t, reg("f", "x")), make([]byte, 10240)...)
	r := bytes.NewReader(tarball)
	if _, err := Apply(context.Background(), newSandbox(t).layer, r, Options{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left unread", r.Len())
	}
}

func TestSync(t *testing.T) {
	if err := Sync(t.TempDir()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := Sync(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Sync of a missing dir: %v, want ENOENT", err)
	}
}
