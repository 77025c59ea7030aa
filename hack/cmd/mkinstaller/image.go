package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths in the image; cmd/berth-installer's --payload default is payloadDir.
const (
	installerPath = "usr/local/bin/berth-installer"
	payloadDir    = "opt/berth"
)

// epoch is the time of every file and of the image: same inputs, same digest.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type options struct {
	berthd, monitor, installer, cniDir string
}

// build makes the image: one layer per part, the least often changed first (CNI plugins, berthd, installer).
func build(o options) (v1.Image, error) {
	if err := checkStatic(o.installer); err != nil {
		return nil, err
	}
	plugins, err := os.ReadDir(o.cniDir)
	if err != nil {
		return nil, fmt.Errorf("CNI plugins: %w", err)
	}
	cni := map[string]string{}
	for _, p := range plugins {
		if p.Type().IsRegular() && !strings.HasPrefix(p.Name(), ".") {
			cni[path.Join(payloadDir, "cni", p.Name())] = filepath.Join(o.cniDir, p.Name())
		}
	}
	if len(cni) == 0 {
		return nil, fmt.Errorf("CNI plugins: none in %s (run hack/tools.sh)", o.cniDir)
	}
	var layers []v1.Layer
	for _, files := range []map[string]string{
		cni,
		{path.Join(payloadDir, "bin", "berthd"): o.berthd, path.Join(payloadDir, "bin", "berth-monitor"): o.monitor},
		{installerPath: o.installer},
	} {
		l, err := layer(files)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config = v1.Config{
		Entrypoint: []string{"/" + installerPath},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Labels:     map[string]string{"org.opencontainers.image.title": "berth-installer"},
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return img, nil
}

// layer makes a gzip-compressed OCI layer holding the given files (image path → local file) as root-owned
// executables, with their parent directories.
func layer(files map[string]string) (v1.Layer, error) {
	entries := map[string]*tar.Header{}
	data := map[string][]byte{}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		data[name] = b
		entries[name] = &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(b))}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			entries[dir] = &tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}
		}
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		hdr := entries[name]
		hdr.ModTime, hdr.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", name, err)
		}
		if _, err := tw.Write(data[name]); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz) // no name, no time in the header
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// checkStatic refuses an installer that needs a dynamic loader: the image has no libc.
func checkStatic(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("installer %s: %w", file, err)
	}
	defer f.Close()
	if f.Section(".interp") != nil {
		return fmt.Errorf("installer %s is dynamically linked: build it with CGO_ENABLED=0", file)
	}
	return nil
}
