package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the fixed timestamp of every file, layer and image: same input, same digest.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one file system object of a layer.
type entry struct {
	typ      byte // tar.TypeDir, tar.TypeReg or tar.TypeLink
	mode     int64
	uid, gid int
	data     []byte
	link     string // a hard link's target path in the layer
}

// tree is a layer's content keyed by clean relative path. Its tar is independent of insertion
// order: map iteration never reaches the output (entries are sorted first).
type tree map[string]entry

func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// add stores e at name, creating missing parent directories as root 0755.
func (t tree) add(name string, e entry) {
	name = cleanName(name)
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := t[dir]; !ok {
			t[dir] = entry{typ: tar.TypeDir, mode: 0o755}
		}
	}
	t[name] = e
}

func (t tree) dir(name string, mode int64) { t.add(name, entry{typ: tar.TypeDir, mode: mode}) }
func (t tree) file(name string, mode int64, data []byte) {
	t.add(name, entry{typ: tar.TypeReg, mode: mode, data: data})
}
func (t tree) hardlink(name, target string) {
	t.add(name, entry{typ: tar.TypeLink, link: cleanName(target)})
}

// merge copies every entry of o into t, o winning on conflicts.
func (t tree) merge(o tree) {
	for name, e := range o {
		t[name] = e
	}
}

// tar writes the tree as an uncompressed tar. Order: every non-hard-link entry by name (a parent
// sorts before its children), then hard links by name, so each link follows its target.
func (t tree) tar() ([]byte, error) {
	names := make([]string, 0, len(t))
	for name := range t {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		la, lb := t[a].typ == tar.TypeLink, t[b].typ == tar.TypeLink
		if la != lb {
			if la {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		e := t[name]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     name,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			hdr.Name += "/"
		case tar.TypeReg:
			hdr.Size = int64(len(e.data))
		case tar.TypeLink:
			target, ok := t[e.link]
			if !ok || target.typ != tar.TypeReg {
				return nil, fmt.Errorf("hard link %s: target %q is not a regular file in the layer", name, e.link)
			}
			hdr.Linkname = e.link
			// A hard link's header carries its target's mode and owner, as Docker and Go's FileInfoHeader write it:
			// containerd 1.6 applies the header's mode to the linked file.
			hdr.Mode, hdr.Uid, hdr.Gid = target.mode, target.uid, target.gid
		default:
			return nil, fmt.Errorf("entry %s: unsupported type %q", name, e.typ)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar data %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

// layer builds a gzip-compressed Docker layer from the tree. The gzip header carries no name or
// time, so the digest depends only on the content (and the Go version's compressor).
func (t tree) layer() (v1.Layer, error) {
	raw, err := t.tar()
	if err != nil {
		return nil, err
	}
	return gzipLayer(raw, gzip.DefaultCompression)
}

func gzipLayer(raw []byte, level int) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, level)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	})
}
