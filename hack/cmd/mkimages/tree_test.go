package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

type hdrSummary struct {
	name string
	typ  byte
	mode int64
	uid  int
	link string
}

func readTar(t *testing.T, raw []byte) []hdrSummary {
	t.Helper()
	var out []hdrSummary
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times mtime=%v atime=%v ctime=%v, want only mtime %v", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, epoch)
		}
		out = append(out, hdrSummary{name: h.Name, typ: h.Typeflag, mode: h.Mode, uid: h.Uid, link: h.Linkname})
	}
}

func TestTreeTarIsIndependentOfInsertionOrder(t *testing.T) {
	build := func(reverse bool) tree {
		ops := []func(tree){
			func(t tree) { t.file("bin/busybox", 0o755, []byte("bb")) },
			func(t tree) { t.hardlink("bin/[", "bin/busybox") },
			func(t tree) { t.hardlink("usr/bin/awk", "/bin/busybox") },
			func(t tree) { t.dir("tmp", 0o1777) },
			func(t tree) { t.file("etc/passwd", 0o644, []byte("root:x:0:0::/root:/bin/sh\n")) },
			func(t tree) { t.file("bin-x/a", 0o644, nil) },
		}
		tr := tree{}
		for i := range ops {
			if reverse {
				i = len(ops) - 1 - i
			}
			ops[i](tr)
		}
		return tr
	}
	var first []byte
	for i := range 20 { // map iteration order differs from run to run
		raw, err := build(i%2 == 1).tar()
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = raw
		} else if !bytes.Equal(first, raw) {
			t.Fatalf("tar of attempt %d differs from the first", i)
		}
	}
	l1, err := build(false).layer()
	if err != nil {
		t.Fatal(err)
	}
	l2, err := build(true).layer()
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := l1.Digest()
	d2, _ := l2.Digest()
	if d1 != d2 {
		t.Errorf("layer digests differ: %s vs %s", d1, d2)
	}
}

func TestTreeTarOrderAndHeaders(t *testing.T) {
	tr := tree{}
	tr.file("bin/busybox", 0o755, []byte("bb"))
	tr.hardlink("bin/[", "bin/busybox")
	tr.hardlink("sbin/ip", "bin/busybox")
	tr.dir("tmp", 0o1777)
	tr.add("usr/local/bin/nnp", entry{typ: tar.TypeReg, mode: 0o4755, data: []byte("nnp")})
	tr.add("home/u", entry{typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000})
	raw, err := tr.tar()
	if err != nil {
		t.Fatal(err)
	}
	want := []hdrSummary{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755},
		{name: "home/", typ: tar.TypeDir, mode: 0o755},
		{name: "home/u/", typ: tar.TypeDir, mode: 0o750, uid: 1000},
		{name: "sbin/", typ: tar.TypeDir, mode: 0o755},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/local/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/local/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/local/bin/nnp", typ: tar.TypeReg, mode: 0o4755},
		// "bin/[" sorts before "bin/busybox": hard links come last so the target exists.
		{name: "bin/[", typ: tar.TypeLink, mode: 0o755, link: "bin/busybox"},
		{name: "sbin/ip", typ: tar.TypeLink, mode: 0o755, link: "bin/busybox"},
	}
	got := readTar(t, raw)
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestTreeTarRejectsBadHardLinks(t *testing.T) {
	tests := map[string]func(tree){
		"missing target": func(t tree) { t.hardlink("bin/ls", "bin/busybox") },
		"dir target": func(t tree) {
			t.dir("bin/busybox", 0o755)
			t.hardlink("bin/ls", "bin/busybox")
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			tr := tree{}
			setup(tr)
			if _, err := tr.tar(); err == nil || !strings.Contains(err.Error(), "hard link bin/ls") {
				t.Fatalf("tar() error = %v, want a hard link error", err)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	tests := map[string]string{
		"/bin/ls":       "bin/ls",
		"bin/ls":        "bin/ls",
		"./usr//bin/":   "usr/bin",
		"../../etc/x":   "etc/x",
		"/usr/../lib64": "lib64",
	}
	for in, want := range tests {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}
