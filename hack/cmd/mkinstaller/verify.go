package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// verify checks an installer index as a node would get it: it names exactly the platforms want, each entry's config
// says the platform its descriptor names, and every executable in each image (berthd, berth-monitor, the installer,
// the CNI plugins) is a static ELF of that architecture. This is what keeps a mixed amd64/arm64 cluster from
// crash-looping on "exec format error".
func verify(idx v1.ImageIndex, want []string) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	got := map[string]v1.Descriptor{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			return fmt.Errorf("index entry %s names no platform", d.Digest)
		}
		key := d.Platform.OS + "/" + d.Platform.Architecture
		if _, dup := got[key]; dup {
			return fmt.Errorf("index has two entries for %s", key)
		}
		got[key] = d
	}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		return fmt.Errorf("index platforms %q, want %q", names, slices.Sorted(slices.Values(want)))
	}
	for _, key := range slices.Sorted(maps.Keys(got)) {
		d := got[key]
		img, err := idx.Image(d.Digest)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if err := verifyImage(img, *d.Platform); err != nil {
			return fmt.Errorf("%s (%s): %w", key, d.Digest, err)
		}
	}
	return nil
}

func verifyImage(img v1.Image, p v1.Platform) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
		return fmt.Errorf("config says %s/%s", cfg.OS, cfg.Architecture)
	}
	required := map[string]bool{installerPath: false, payloadDir + "/bin/berthd": false, payloadDir + "/bin/berth-monitor": false}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layers: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode&0o111 == 0 {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: not an ELF executable: %w", hdr.Name, err)
		}
		arch, err := elfArch(hdr.Name, f)
		if err != nil {
			return err
		}
		if arch != p.Architecture {
			return fmt.Errorf("%s is for %s", hdr.Name, arch)
		}
		if _, ok := required[strings.TrimPrefix(hdr.Name, "/")]; ok {
			required[strings.TrimPrefix(hdr.Name, "/")] = true
		}
	}
	for name, found := range required {
		if !found {
			return fmt.Errorf("%s missing", name)
		}
	}
	return nil
}
