package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// escapeCases are hostile layers; each must leave everything outside the layer dir untouched. They also seed
// FuzzApply. sentinel is the absolute path of the sandbox's sentinel dir, next to the layer dir.
func escapeCases(sentinel string) map[string][]ent {
	dev := ent{hdr: tar.Header{Name: "../sentinel/dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}
	return map[string][]ent{
		"dotdot name":                 {reg("../sentinel/file", "pwned"), reg("../../../../../../../../tmp/x", "pwned")},
		"dotdot dir":                  {dir("../sentinel/dir/"), reg("../sentinel/dir/new", "pwned")},
		"absolute name":               {reg(sentinel+"/file", "pwned"), dir(sentinel + "/dir/")},
		"absolute symlink then file":  {symlink("evil", sentinel), reg("evil/file", "pwned"), reg("evil/new", "pwned")},
		"relative symlink then file":  {symlink("evil", "../sentinel"), reg("evil/file", "pwned"), reg("evil/new", "pwned")},
		"deep relative symlink":       {dir("a/"), symlink("a/evil", "../../../../../../.."+sentinel), reg("a/evil/file", "pwned")},
		"symlink then dir":            {symlink("evil", sentinel), ent{hdr: tar.Header{Name: "evil/dir/", Typeflag: tar.TypeDir, Mode: 0o777}}},
		"dir replaces symlink":        {symlink("evil", sentinel), ent{hdr: tar.Header{Name: "evil/", Typeflag: tar.TypeDir, Mode: 0o777, Uid: 4242}}},
		"file replaces symlink":       {symlink("evil", sentinel+"/file"), reg("evil", "pwned")},
		"symlink chain":               {symlink("a", "b"), symlink("b", sentinel), reg("a/file", "pwned")},
		"symlink loop":                {symlink("a", "b"), symlink("b", "a"), reg("a/file", "pwned")},
		"proc magic link":             {symlink("evil", "/proc/self/cwd"), reg("evil/file", "pwned"), symlink("root", "/proc/self/root"+sentinel), reg("root/file", "pwned")},
		"symlink then whiteout":       {symlink("evil", sentinel), reg("evil/.wh.file", "")},
		"symlink then opaque":         {symlink("evil", sentinel), reg("evil/.wh..wh..opq", "")},
		"symlink then device":         {symlink("evil", sentinel), ent{hdr: tar.Header{Name: "evil/dev", Typeflag: tar.TypeFifo}}},
		"symlink then hard link":      {symlink("evil", sentinel), reg("f", "x"), hardlink("evil/new", "f")},
		"symlink then symlink":        {symlink("evil", sentinel), symlink("evil/new", "/etc/passwd")},
		"hard link dotdot target":     {hardlink("hl", "../sentinel/file")},
		"hard link absolute target":   {hardlink("hl", sentinel+"/file")},
		"hard link through symlink":   {symlink("evil", sentinel), hardlink("hl", "evil/file")},
		"hard link through rel link":  {symlink("evil", "../sentinel"), hardlink("hl", "evil/file")},
		"hard link to symlink":        {symlink("evil", sentinel+"/file"), hardlink("hl", "evil"), reg("hl", "pwned")},
		"hard link to dir":            {hardlink("hl", "../sentinel/dir")},
		"entry under regular file":    {reg("f", "x"), reg("f/x", "pwned")},
		"device with dotdot name":     {dev},
		"whiteout dotdot":             {reg("../.wh.sentinel", ""), reg(".wh..", ""), reg("a/.wh...", "")},
		"dotdot whiteout name":        {reg("../sentinel/.wh.file", "")},
		"root replaced by file":       {reg(".", "pwned"), reg("a/..", "pwned")},
		"huge name":                   {reg(strings.Repeat("a/", 4000)+"f", "x")},
		"long component":              {reg(strings.Repeat("a", 300), "x")},
		"long symlink target":         {symlink("l", strings.Repeat("../", 2000))},
		"symlink dotdot then dotdot":  {symlink("a", ".."), reg("a/../sentinel/file", "pwned"), reg("a/sentinel/new", "pwned")},
		"lower symlink hard link":     {hardlink("hl", "link/x")},
		"lower dotdot hard link":      {hardlink("hl", "../../sentinel/file")},
		"nul in name":                 {reg("a\x00b", "x")},
		"xattr through symlink":       {symlink("evil", sentinel+"/file"), {hdr: tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: sentinel + "/file", PAXRecords: map[string]string{"SCHILY.xattr.user.x": "y"}}}},
		"overlay xattr is not set":    {{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": sentinel}}}},
		"negative uid":                {{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Uid: -1, Gid: -1}}},
		"whiteout through dotdot dir": {dir("a/"), reg("a/../../.wh.sentinel", "")},
	}
}

func TestApplyEscapes(t *testing.T) {
	for name, ents := range escapeCases("/SENTINEL") {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			sentinel := filepath.Join(s.parent, "sentinel")
			fixed := make([]ent, len(ents))
			for i, e := range ents {
				e.hdr.Name = strings.ReplaceAll(e.hdr.Name, "/SENTINEL", sentinel)
				e.hdr.Linkname = strings.ReplaceAll(e.hdr.Linkname, "/SENTINEL", sentinel)
				for k, v := range e.hdr.PAXRecords {
					e.hdr.PAXRecords[k] = strings.ReplaceAll(v, "/SENTINEL", sentinel)
				}
				fixed[i] = e
			}
			if !isRoot {
				fixed = dropRootOnly(fixed)
			}
			// A lower whose symlink leads to the sentinel: hard links must not follow it.
			lower := filepath.Join(s.parent, "lower")
			if err := os.Symlink(sentinel, filepath.Join(lower, "link")); err != nil {
				t.Fatal(err)
			}
			s.before = snapshot(t, s.parent, "layer")
			_, err := Apply(context.Background(), s.layer, bytes.NewReader(caseTar(t, fixed)), Options{Lowers: []string{lower}})
			t.Logf("Apply: %v", err)
			s.check(t)
			assertNoEscapeInside(t, s.layer, sentinel)
		})
	}
}

// caseTar builds an escape case, patching what archive/tar's writer refuses to write.
func caseTar(t testing.TB, ents []ent) []byte {
	for _, e := range ents {
		if strings.Contains(e.hdr.Name, "\x00") || e.hdr.Uid < 0 {
			return rawTar(t, ents)
		}
	}
	return mkTar(t, ents...)
}

// assertNoEscapeInside checks that nothing in the layer dir is a hard link to a sentinel file.
func assertNoEscapeInside(t *testing.T, layer, sentinel string) {
	t.Helper()
	ino := lstat(t, filepath.Join(sentinel, "file")).Ino
	filepath.Walk(layer, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && lstat(t, p).Ino == ino {
			t.Errorf("%s is a hard link to the sentinel", p)
		}
		return nil
	})
}

func dropRootOnly(ents []ent) []ent {
	var out []ent
	for _, e := range ents {
		if e.hdr.Typeflag == tar.TypeChar || e.hdr.Typeflag == tar.TypeBlock || strings.Contains(e.hdr.Name, ".wh.") {
			continue
		}
		e.hdr.Uid, e.hdr.Gid = 0, 0
		out = append(out, e)
	}
	return out
}

// rawTar writes headers that archive/tar's writer refuses (NUL in names, negative ids) by patching a valid one.
func rawTar(t testing.TB, ents []ent) []byte {
	t.Helper()
	var out []byte
	for _, e := range ents {
		h := e.hdr
		name, uid, gid := h.Name, h.Uid, h.Gid
		h.Name, h.Uid, h.Gid = strings.ReplaceAll(name, "\x00", "_"), 0, 0
		b := mkTar(t, ent{hdr: h, body: e.body})
		b = b[:len(b)-1024] // drop the end-of-archive blocks
		copy(b[0:100], append([]byte(name), make([]byte, 100)...)[:100])
		if uid < 0 || gid < 0 {
			copy(b[108:116], []byte("\xff\xff\xff\xff\xff\xff\xff\xff"))
			copy(b[116:124], []byte("\xff\xff\xff\xff\xff\xff\xff\xff"))
		}
		fixChecksum(b[:512])
		out = append(out, b...)
	}
	return append(out, make([]byte, 1024)...)
}

func fixChecksum(h []byte) {
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], []byte(strings.Repeat("0", 6-len(itoa8(sum)))+itoa8(sum)+"\x00 "))
}

func itoa8(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}

func TestApplyEscapeOutcomes(t *testing.T) {
	tests := map[string]struct {
		ents    []ent
		wantErr bool
		check   func(t *testing.T, layer string)
	}{
		"dotdot is confined": {
			ents: []ent{reg("../../x", "1")},
			check: func(t *testing.T, layer string) {
				if b, err := os.ReadFile(filepath.Join(layer, "x")); err != nil || string(b) != "1" {
					t.Errorf("x = %q, %v", b, err)
				}
			},
		},
		"absolute is relative to the layer": {
			ents: []ent{reg("/etc/passwd", "1")},
			check: func(t *testing.T, layer string) {
				if b, err := os.ReadFile(filepath.Join(layer, "etc/passwd")); err != nil || string(b) != "1" {
					t.Errorf("etc/passwd = %q, %v", b, err)
				}
			},
		},
		"relative symlink resolves inside": {
			ents: []ent{symlink("evil", "../../.."), reg("evil/x", "1")},
			check: func(t *testing.T, layer string) {
				if b, err := os.ReadFile(filepath.Join(layer, "x")); err != nil || string(b) != "1" {
					t.Errorf("x = %q, %v", b, err)
				}
			},
		},
		"absolute symlink resolves inside": {
			ents: []ent{dir("etc/"), symlink("evil", "/etc"), reg("evil/x", "1")},
			check: func(t *testing.T, layer string) {
				if b, err := os.ReadFile(filepath.Join(layer, "etc/x")); err != nil || string(b) != "1" {
					t.Errorf("etc/x = %q, %v", b, err)
				}
			},
		},
		"dangling symlink parent fails":  {ents: []ent{symlink("evil", "/nowhere"), reg("evil/x", "1")}, wantErr: true},
		"parent is a regular file fails": {ents: []ent{reg("f", ""), reg("f/x", "1")}, wantErr: true},
		"huge name fails":                {ents: []ent{reg(strings.Repeat("a/", 2100)+"f", "1")}, wantErr: true},
		"file replaces symlink": {
			ents: []ent{symlink("l", "/etc/passwd"), reg("l", "1")},
			check: func(t *testing.T, layer string) {
				if fi, err := os.Lstat(filepath.Join(layer, "l")); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("l: %v, %v", fi, err)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Apply(context.Background(), s.layer, bytes.NewReader(mkTar(t, tc.ents...)), Options{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Apply: %v, want error %v", err, tc.wantErr)
			}
			s.check(t)
			if tc.check != nil {
				tc.check(t, s.layer)
			}
		})
	}
}

// paxTar is a PAX header with body records (which archive/tar's writer would refuse) followed by entry e.
func paxTar(t testing.TB, records string, e ent) []byte {
	t.Helper()
	b := mkTar(t, reg("PaxHeaders/f", records))
	b = b[:len(b)-1024]
	b[156] = tar.TypeXHeader
	fixChecksum(b[:512])
	return append(b, mkTar(t, e)...)
}

func TestApplyHugePAXHeader(t *testing.T) {
	s := newSandbox(t)
	value := strings.Repeat("x", 2<<20)
	record := fmt.Sprintf("%d SCHILY.xattr.user.big=%s\n", len(value)+len("SCHILY.xattr.user.big=")+2+8, value)
	tarball := paxTar(t, record, reg("f", "x"))
	_, err := Apply(context.Background(), s.layer, bytes.NewReader(tarball), Options{})
	if !errors.Is(err, tar.ErrFieldTooLong) {
		t.Fatalf("Apply: %v, want %v", err, tar.ErrFieldTooLong)
	}
	s.check(t)
}
