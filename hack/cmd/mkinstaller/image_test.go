package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// staticELF is the smallest file debug/elf reads as a statically linked executable for machine: a header without
// sections or program headers.
func staticELF(machine elf.Machine) []byte {
	hdr := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	return b.Bytes()
}

// stand-in executables: an ELF header for the architecture, then the file's name, so contents differ.
func exe(arch, name string) string { return string(staticELF(machines[arch].machine)) + name }

// inputs lays out a release directory of stand-ins for arch: the installer, berthd, berth-monitor and CNI plugins.
func inputs(t *testing.T, arch string) payload {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "cni"), 0o755))
	for _, name := range []string{"bin/berth-installer", "bin/berthd", "bin/berth-monitor", "cni/bridge", "cni/loopback"} {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(exe(arch, path.Base(name))), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(dir, "cni", ".version"), []byte("v1\n"), 0o644))
	return payloadFrom(dir)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// files lists the directories and files of img as "path mode [content]".
func files(t *testing.T, img v1.Image) map[string]string {
	out := map[string]string{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		data, _ := io.ReadAll(tr)
		desc := hdr.FileInfo().Mode().String()
		if hdr.Typeflag == tar.TypeReg {
			desc += " " + string(data)
		}
		out[strings.TrimSuffix(hdr.Name, "/")] = desc
	}
}

func TestBuildIndexAndPush(t *testing.T) {
	amd, arm := inputs(t, "amd64"), inputs(t, "arm64")
	idx, err := buildIndex([]payload{amd, arm})
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	wantPlatform := map[string]v1.Platform{
		"amd64": {OS: "linux", Architecture: "amd64"},
		"arm64": {OS: "linux", Architecture: "arm64", Variant: "v8"},
	}
	for _, d := range im.Manifests {
		arch := d.Platform.Architecture
		if !reflect.DeepEqual(*d.Platform, wantPlatform[arch]) {
			t.Errorf("platform %+v, want %+v", *d.Platform, wantPlatform[arch])
		}
		img, err := idx.Image(d.Digest)
		must(t, err)
		want := map[string]string{
			"opt":                           "drwxr-xr-x",
			"opt/berth":                     "drwxr-xr-x",
			"opt/berth/bin":                 "drwxr-xr-x",
			"opt/berth/bin/berthd":          "-rwxr-xr-x " + exe(arch, "berthd"),
			"opt/berth/bin/berth-monitor":   "-rwxr-xr-x " + exe(arch, "berth-monitor"),
			"opt/berth/cni":                 "drwxr-xr-x",
			"opt/berth/cni/bridge":          "-rwxr-xr-x " + exe(arch, "bridge"),
			"opt/berth/cni/loopback":        "-rwxr-xr-x " + exe(arch, "loopback"),
			"usr":                           "drwxr-xr-x",
			"usr/local":                     "drwxr-xr-x",
			"usr/local/bin":                 "drwxr-xr-x",
			"usr/local/bin/berth-installer": "-rwxr-xr-x " + exe(arch, "berth-installer"),
		}
		if got := files(t, img); !maps.Equal(got, want) {
			t.Errorf("%s files:\n%v\nwant:\n%v", arch, got, want)
		}
		cfg, err := img.ConfigFile()
		must(t, err)
		if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/local/bin/berth-installer"}) || cfg.OS != "linux" ||
			cfg.Architecture != arch || cfg.Variant != wantPlatform[arch].Variant || !cfg.Created.Time.Equal(epoch) {
			t.Errorf("%s config: entrypoint %q platform %s/%s/%s created %v", arch, cfg.Config.Entrypoint, cfg.OS, cfg.Architecture, cfg.Variant, cfg.Created)
		}
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("manifest media type %s", mt)
		}
		layers, err := img.Layers()
		must(t, err)
		for _, l := range layers {
			if mt, _ := l.MediaType(); mt != types.OCILayer {
				t.Errorf("layer media type %s", mt)
			}
		}
	}
	must(t, verify(idx, []string{"linux/amd64", "linux/arm64"}))

	again, err := buildIndex([]payload{amd, arm})
	must(t, err)
	d1, _ := idx.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: %s and %s", d1, d2)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/berth/installer:test"
	ctx := context.Background()
	must(t, run(ctx, ref, false, []payload{amd, arm}))
	parsed, err := name.ParseReference(ref)
	must(t, err)
	pulled, err := remote.Index(parsed)
	must(t, err)
	if d, _ := pulled.Digest(); d != d1 {
		t.Errorf("pushed %s, registry has %s", d1, d)
	}
	must(t, checkRemote(ctx, ref, false, []string{"linux/arm64", "linux/amd64"}))
	if err := checkRemote(ctx, ref, false, []string{"linux/amd64"}); err == nil || !strings.Contains(err.Error(), "platforms") {
		t.Errorf("check for amd64 alone of a two-platform index: %v", err)
	}
}

func TestBuildRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		payloads func(t *testing.T) []payload
		err      string
	}{
		"mixed architectures": {func(t *testing.T) []payload {
			p := inputs(t, "amd64")
			p.monitor = inputs(t, "arm64").monitor
			return []payload{p}
		}, "is for arm64, berthd"},
		"a CNI plugin of another architecture": {func(t *testing.T) []payload {
			p := inputs(t, "arm64")
			must(t, os.WriteFile(filepath.Join(p.cniDir, "portmap"), []byte(exe("amd64", "portmap")), 0o755))
			return []payload{p}
		}, "portmap is for amd64"},
		"two payloads of one architecture": {func(t *testing.T) []payload {
			return []payload{inputs(t, "arm64"), inputs(t, "arm64")}
		}, "two payloads for linux/arm64"},
		"no CNI plugins": {func(t *testing.T) []payload {
			p := inputs(t, "amd64")
			p.cniDir = t.TempDir()
			return []payload{p}
		}, "CNI plugins: none"},
		"an architecture berth does not release": {func(t *testing.T) []payload {
			p := inputs(t, "amd64")
			must(t, os.WriteFile(p.berthd, staticELF(elf.EM_RISCV), 0o755))
			return []payload{p}
		}, "EM_RISCV is not one berth releases for"},
		"no payload": {func(t *testing.T) []payload { return nil }, "no payload"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := buildIndex(tc.payloads(t)); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

// An image whose platform says arm64 but whose binaries are amd64 is what crash-loops a node on "exec format error".
func TestVerifyCatchesWrongArchitecture(t *testing.T) {
	img, _, err := build(inputs(t, "amd64"))
	must(t, err)
	cfg, err := img.ConfigFile()
	must(t, err)
	cfg = cfg.DeepCopy()
	cfg.Architecture = "arm64"
	mislabeled, err := mutate.ConfigFile(img, cfg)
	must(t, err)
	armImg, _, err := build(inputs(t, "arm64"))
	must(t, err)
	for name, tc := range map[string]struct {
		add  []mutate.IndexAddendum
		want []string
		err  string
	}{
		"amd64 binaries under arm64": {
			add:  []mutate.IndexAddendum{{Add: mislabeled, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}}},
			want: []string{"linux/arm64"}, err: "usr/local/bin/berth-installer is for amd64",
		},
		"config and descriptor disagree": {
			add:  []mutate.IndexAddendum{{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}}},
			want: []string{"linux/arm64"}, err: "config says linux/amd64",
		},
		"a platform missing": {
			add:  []mutate.IndexAddendum{{Add: armImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}}},
			want: []string{"linux/amd64", "linux/arm64"}, err: "index platforms",
		},
		"no platform named": {
			add:  []mutate.IndexAddendum{{Add: armImg}},
			want: []string{"linux/arm64"}, err: "names no platform",
		},
	} {
		t.Run(name, func(t *testing.T) {
			idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), tc.add...)
			if err := verify(idx, tc.want); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

func TestBuildRefusesDynamicInstaller(t *testing.T) {
	f, err := elf.Open("/bin/sh")
	if err != nil || f.Section(".interp") == nil {
		t.Skip("/bin/sh is not a dynamically linked ELF here")
	}
	arch := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]
	if arch == "" {
		t.Skipf("/bin/sh is for %s", f.Machine)
	}
	p := inputs(t, arch)
	p.installer = "/bin/sh"
	if _, err := buildIndex([]payload{p}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic installer: %v", err)
	}
}
