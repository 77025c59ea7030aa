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
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// staticELF is the smallest file debug/elf reads as a statically linked executable: a header without sections.
func staticELF() []byte {
	hdr := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	return b.Bytes()
}

// inputs lays out stand-ins for the installer, berthd, berth-monitor and the CNI plugins.
func inputs(t *testing.T) options {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "cni"), 0o755))
	for name, data := range map[string]string{"berth-installer": string(staticELF()), "berthd": "berthd binary",
		"berth-monitor": "monitor binary", "cni/bridge": "bridge", "cni/loopback": "loopback", "cni/.version": "v1\n"} {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755))
	}
	return options{berthd: filepath.Join(dir, "berthd"), monitor: filepath.Join(dir, "berth-monitor"), installer: filepath.Join(dir, "berth-installer"), cniDir: filepath.Join(dir, "cni")}
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

func TestBuildAndPush(t *testing.T) {
	o := inputs(t)
	img, err := build(o)
	must(t, err)

	want := map[string]string{
		"opt":                           "drwxr-xr-x",
		"opt/berth":                     "drwxr-xr-x",
		"opt/berth/bin":                 "drwxr-xr-x",
		"opt/berth/bin/berthd":          "-rwxr-xr-x berthd binary",
		"opt/berth/bin/berth-monitor":   "-rwxr-xr-x monitor binary",
		"opt/berth/cni":                 "drwxr-xr-x",
		"opt/berth/cni/bridge":          "-rwxr-xr-x bridge",
		"opt/berth/cni/loopback":        "-rwxr-xr-x loopback",
		"usr":                           "drwxr-xr-x",
		"usr/local":                     "drwxr-xr-x",
		"usr/local/bin":                 "drwxr-xr-x",
		"usr/local/bin/berth-installer": "-rwxr-xr-x " + string(staticELF()),
	}
	if got := files(t, img); !maps.Equal(got, want) {
		t.Errorf("files:\n%v\nwant:\n%v", got, want)
	}
	cfg, err := img.ConfigFile()
	must(t, err)
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/local/bin/berth-installer"}) || cfg.OS != "linux" || !cfg.Created.Time.Equal(epoch) {
		t.Errorf("config: entrypoint %q os %q created %v", cfg.Config.Entrypoint, cfg.OS, cfg.Created)
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

	again, err := build(o)
	must(t, err)
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: %s and %s", d1, d2)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/berth/installer:test"
	must(t, run(context.Background(), ref, false, o))
	parsed, err := name.ParseReference(ref)
	must(t, err)
	pulled, err := remote.Image(parsed)
	must(t, err)
	if d, _ := pulled.Digest(); d != d1 {
		t.Errorf("pushed %s, registry has %s", d1, d)
	}
}

func TestBuildRefusesDynamicInstaller(t *testing.T) {
	if f, err := elf.Open("/bin/sh"); err != nil || f.Section(".interp") == nil {
		t.Skip("/bin/sh is not a dynamically linked ELF here")
	}
	o := inputs(t)
	o.installer = "/bin/sh"
	if _, err := build(o); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("dynamic installer: %v", err)
	}
}
