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

// payload is one platform's binaries. A release directory (hack/release.sh) holds them in the layout
// cmd/berth-installer's --payload reads: bin/berthd, bin/berth-monitor, bin/berth-installer, cni/<plugin>.
type payload struct {
	berthd, monitor, installer, cniDir string
}

func payloadFrom(dir string) payload {
	return payload{
		berthd:    filepath.Join(dir, "bin", "berthd"),
		monitor:   filepath.Join(dir, "bin", "berth-monitor"),
		installer: filepath.Join(dir, "bin", "berth-installer"),
		cniDir:    filepath.Join(dir, "cni"),
	}
}

// machines are the architectures berth releases, by GOARCH: the ELF machine of their executables and the platform
// variant the index names (arm64 is ARMv8, as docker and containerd write it).
var machines = map[string]struct {
	machine elf.Machine
	variant string
}{
	"amd64": {elf.EM_X86_64, ""},
	"arm64": {elf.EM_AARCH64, "v8"},
}

// buildIndex makes the multi-platform installer image: one image per payload, each for the architecture of its
// executables, so that every node pulls the one it can run.
func buildIndex(payloads []payload) (v1.ImageIndex, error) {
	if len(payloads) == 0 {
		return nil, fmt.Errorf("no payload")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	seen := map[string]bool{}
	for _, p := range payloads {
		img, platform, err := build(p)
		if err != nil {
			return nil, err
		}
		if seen[platform.Architecture] {
			return nil, fmt.Errorf("two payloads for %s (the second: %s)", platform, p.berthd)
		}
		seen[platform.Architecture] = true
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// build makes one platform's image: one layer per part, the least often changed first (CNI plugins, berthd,
// installer). The platform is that of the executables, which must all agree.
func build(p payload) (v1.Image, *v1.Platform, error) {
	plugins, err := os.ReadDir(p.cniDir)
	if err != nil {
		return nil, nil, fmt.Errorf("CNI plugins: %w", err)
	}
	cni := map[string]string{}
	for _, e := range plugins {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			cni[path.Join(payloadDir, "cni", e.Name())] = filepath.Join(p.cniDir, e.Name())
		}
	}
	if len(cni) == 0 {
		return nil, nil, fmt.Errorf("CNI plugins: none in %s (run hack/tools.sh)", p.cniDir)
	}
	arch, err := goarch(p.berthd)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range append([]string{p.monitor, p.installer}, slices.Sorted(maps.Values(cni))...) {
		a, err := goarch(f)
		if err != nil {
			return nil, nil, err
		}
		if a != arch {
			return nil, nil, fmt.Errorf("%s is for %s, berthd %s for %s: one payload is one architecture", f, a, p.berthd, arch)
		}
	}
	var layers []v1.Layer
	for _, files := range []map[string]string{
		cni,
		{path.Join(payloadDir, "bin", "berthd"): p.berthd, path.Join(payloadDir, "bin", "berth-monitor"): p.monitor},
		{installerPath: p.installer},
	} {
		l, err := layer(files)
		if err != nil {
			return nil, nil, err
		}
		layers = append(layers, l)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	platform := &v1.Platform{OS: "linux", Architecture: arch, Variant: machines[arch].variant}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = platform.OS, platform.Architecture, platform.Variant
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config = v1.Config{
		Entrypoint: []string{"/" + installerPath},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Labels:     map[string]string{"org.opencontainers.image.title": "berth-installer"},
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	return img, platform, nil
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

// goarch is the architecture of a statically linked ELF executable. The image has no libc, and berthd and
// berth-monitor go to hosts whose libc berth does not know: a dynamic loader (PT_INTERP) is refused.
func goarch(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	return elfArch(file, f)
}

func elfArch(name string, f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: build it static (CGO_ENABLED=0, or -extldflags -static)", name)
		}
	}
	for arch, m := range machines {
		if f.Machine == m.machine {
			return arch, nil
		}
	}
	return "", fmt.Errorf("%s: ELF machine %s is not one berth releases for", name, f.Machine)
}
