package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func fakeBases(t *testing.T) *bases {
	t.Helper()
	bb := busybox{data: []byte("busybox"), applets: []string{"bin/sh", "bin/ls", "usr/bin/awk", "sbin/ip"}}
	libs := map[string][]byte{"lib64/ld-linux-x86-64.so.2": []byte("ld"), "lib/x86_64-linux-gnu/libc.so.6": []byte("libc")}
	b, err := newBases(bb, bb, libs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fakeHelpers() map[string][]byte {
	return map[string][]byte{"pause": []byte("pause"), "nginx": []byte("nginx"), "nnp": []byte("nnp")}
}

func TestBaseTree(t *testing.T) {
	b := fakeBases(t)
	tests := map[string]struct {
		name string
		want entry
	}{
		"busybox":        {"bin/busybox", entry{typ: tar.TypeReg, mode: 0o755, data: []byte("busybox")}},
		"applet":         {"usr/bin/awk", entry{typ: tar.TypeLink, link: "bin/busybox"}},
		"tmp":            {"tmp", entry{typ: tar.TypeDir, mode: 0o1777}},
		"root home":      {"root", entry{typ: tar.TypeDir, mode: 0o700}},
		"mail spool":     {"var/spool/mail", entry{typ: tar.TypeDir, mode: 0o755}},
		"ipcs stand-in":  {"bin/ipcs", entry{typ: tar.TypeReg, mode: 0o755, data: []byte(ipcsScript)}},
		"pgrep stand-in": {"bin/pgrep", entry{typ: tar.TypeReg, mode: 0o755, data: []byte(pgrepScript)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := b.static[tc.name]
			if !ok {
				t.Fatalf("%s missing", tc.name)
			}
			if got.typ != tc.want.typ || got.mode != tc.want.mode || got.link != tc.want.link || !bytes.Equal(got.data, tc.want.data) {
				t.Errorf("%s = %+v, want %+v", tc.name, got, tc.want)
			}
		})
	}
	for _, user := range []string{"www-data:x:33:33:", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(b.static["etc/passwd"].data), user) {
			t.Errorf("/etc/passwd lacks %q", user)
		}
	}
	if _, ok := b.static["etc/nsswitch.conf"]; ok {
		t.Error("static base has nsswitch.conf")
	}
	for _, p := range []string{"etc/nsswitch.conf", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6"} {
		if _, ok := b.glibc[p]; !ok {
			t.Errorf("glibc base lacks %s", p)
		}
	}
}

func TestShadowFor(t *testing.T) {
	got := string(shadowFor("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	want := "root:*:19723:0:99999:7:::\nnobody:*:19723:0:99999:7:::\n"
	if got != want {
		t.Errorf("shadowFor = %q, want %q", got, want)
	}
}

func TestImagesAreDeterministicAndDistinct(t *testing.T) {
	digests := func() map[string]v1.Hash {
		b := fakeBases(t)
		out := map[string]v1.Hash{}
		for _, d := range validationImages(fakeHelpers()) {
			img, err := d.build(b)
			if err != nil {
				t.Fatal(err)
			}
			h, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			out[d.String()] = h
		}
		return out
	}
	first, second := digests(), digests()
	seen := map[v1.Hash]string{}
	for name, h := range first {
		if second[name] != h {
			t.Errorf("%s: digest %s then %s", name, h, second[name])
		}
		if other, dup := seen[h]; dup {
			t.Errorf("%s and %s have the same digest %s", name, other, h)
		}
		seen[h] = name
	}
}

func TestImageConfig(t *testing.T) {
	b := fakeBases(t)
	byName := map[string]imageDef{}
	for _, d := range validationImages(fakeHelpers()) {
		byName[d.String()] = d
	}
	tests := map[string]struct {
		def        string
		layers     int
		user       string
		stopSignal string
		sharesBase bool
	}{
		"default busybox": {def: "e2e-test-images/busybox:1.29-2,latest", layers: 1, sharesBase: true},
		"nginx":           {def: "e2e-test-images/nginx:1.14-2,latest", layers: 2, stopSignal: "SIGQUIT", sharesBase: true},
		"httpd":           {def: "e2e-test-images/httpd:2.4.39-4,latest", layers: 2, stopSignal: "SIGWINCH", sharesBase: true},
		"pause":           {def: "pause:3.9,latest", layers: 1, user: "65535:65535"},
		"user group":      {def: "k8s-staging-cri-tools/test-image-user-username-group:latest", layers: 1, user: "www-data:1004", sharesBase: true},
		"benchmark glibc": {def: "docker/library/busybox:1.35.0-glibc,1-glibc", layers: 1},
	}
	glibcBaseDigest, _ := b.glibcLayer.Digest()
	staticBaseDigest, _ := b.staticLayer.Digest()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, ok := byName[tc.def]
			if !ok {
				t.Fatalf("no image %s", tc.def)
			}
			img, err := d.build(b)
			if err != nil {
				t.Fatal(err)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != types.DockerManifestSchema2 || m.Config.MediaType != types.DockerConfigJSON {
				t.Errorf("media types %s / %s, want Docker schema 2", m.MediaType, m.Config.MediaType)
			}
			if len(m.Layers) != tc.layers {
				t.Fatalf("%d layers, want %d", len(m.Layers), tc.layers)
			}
			shared := m.Layers[0].Digest == glibcBaseDigest || m.Layers[0].Digest == staticBaseDigest
			if shared != tc.sharesBase {
				t.Errorf("first layer shared with a base = %v, want %v", shared, tc.sharesBase)
			}
			for _, l := range m.Layers {
				if l.MediaType != types.DockerLayer {
					t.Errorf("layer media type %s, want %s", l.MediaType, types.DockerLayer)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(epoch) {
				t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
			}
			if cf.Config.User != tc.user || cf.Config.StopSignal != tc.stopSignal {
				t.Errorf("user %q stop signal %q, want %q %q", cf.Config.User, cf.Config.StopSignal, tc.user, tc.stopSignal)
			}
			if cf.Config.Labels[labelKey] != tc.def {
				t.Errorf("label %s = %q, want %q", labelKey, cf.Config.Labels[labelKey], tc.def)
			}
			if len(cf.History) != tc.layers || len(cf.RootFS.DiffIDs) != tc.layers {
				t.Errorf("history %d diff ids %d, want %d", len(cf.History), len(cf.RootFS.DiffIDs), tc.layers)
			}
		})
	}
}

func TestBenchRandomIsStable(t *testing.T) {
	a := randomBytes(newRNG(3), 64)
	b := randomBytes(newRNG(3), 64)
	c := randomBytes(newRNG(4), 64)
	if !bytes.Equal(a, b) {
		t.Error("same stream gave different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different streams gave the same bytes")
	}
}

func TestPushSkipsUnchangedTags(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	b := fakeBases(t)
	d := imageDef{repo: "test/img", tags: []string{"1", "latest"}, base: staticBase, files: marker("x")}
	img, err := d.build(b)
	if err != nil {
		t.Fatal(err)
	}
	statuses := func(img v1.Image) []string {
		var out bytes.Buffer
		if err := push(context.Background(), &out, reg, d, img); err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			f := strings.Fields(line)
			s = append(s, f[len(f)-1])
		}
		return s
	}
	check := func(step string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: statuses %v, want %v", step, got, want)
		}
	}
	check("first push", statuses(img), "pushed", "tagged")
	check("re-push", statuses(img), "unchanged", "unchanged")
	d.files = marker("y")
	changed, err := d.build(b)
	if err != nil {
		t.Fatal(err)
	}
	check("changed image", statuses(changed), "pushed", "tagged")
}

func TestSharedLibsOfHostBinary(t *testing.T) {
	const bin = "/bin/sh"
	interp, _, err := elfDeps(bin)
	if err != nil || interp == "" {
		t.Skipf("%s is not a dynamic ELF binary here (%v)", bin, err)
	}
	libs, err := sharedLibs(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cleanName(interp), imageLibDir + "/libc.so.6"} {
		if len(libs[p]) == 0 {
			t.Errorf("sharedLibs(%s) lacks %s; got %d files", bin, p, len(libs))
		}
	}
}

// TestStandInScripts runs the ipcs and pgrep scripts with Debian's static busybox, as in the
// images.
func TestStandInScripts(t *testing.T) {
	const bb = "/usr/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skipf("%s not installed (hack/install-deps.sh)", bb)
	}
	dir := t.TempDir()
	for name, script := range map[string]string{"ipcs": ipcsScript, "pgrep": pgrepScript} {
		if err := os.WriteFile(dir+"/"+name, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel names a process after the file it executed, as with the image's hard links.
	if err := os.Symlink(bb, dir+"/sleep"); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command(dir+"/sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()

	out, err := exec.Command(bb, "sh", dir+"/pgrep", "sleep").Output()
	if err != nil {
		t.Fatalf("pgrep sleep: %v", err)
	}
	if !strings.Contains(" "+strings.ReplaceAll(string(out), "\n", " "), " "+strconv.Itoa(sleep.Process.Pid)+" ") {
		t.Errorf("pgrep sleep = %q, want pid %d", out, sleep.Process.Pid)
	}
	out, err = exec.Command(bb, "sh", "-c", dir+"/pgrep no-such-process-name || true").Output()
	if err != nil || len(out) != 0 {
		t.Errorf("pgrep no match = %q, %v; want empty output", out, err)
	}
	out, err = exec.Command(bb, "sh", dir+"/ipcs", "-m").Output()
	if err != nil || !strings.HasPrefix(string(out), "------ Shared Memory Segments") {
		t.Errorf("ipcs -m = %q, %v", out, err)
	}
}

func TestRandomTreesDeterministic(t *testing.T) {
	r := randomTrees{prefix: "bench/t", stream: 7, layers: 3, dirs: 2, files: 3, minSize: 1, maxSize: 64}
	digests := func() []v1.Hash {
		files, layers, err := r.generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 || len(layers) != r.layers-1 {
			t.Fatalf("generate: %d first-layer entries, %d more layers; want >0 and %d", len(files), len(layers), r.layers-1)
		}
		first, err := files.layer()
		if err != nil {
			t.Fatal(err)
		}
		var out []v1.Hash
		for _, l := range append([]v1.Layer{first}, layers...) {
			d, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	a, b := digests(), digests()
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("layer %d: digest %s then %s", i, a[i], b[i])
		}
	}
	for _, e := range r.tree(0) {
		if e.typ == tar.TypeReg && (len(e.data) < r.minSize || len(e.data) > r.maxSize) {
			t.Errorf("file of %d bytes, want %d..%d", len(e.data), r.minSize, r.maxSize)
		}
	}
}

func TestRecipeUpToDate(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	b := fakeBases(t)
	generated := 0
	d := imageDef{repo: "bench/t", tags: []string{"latest", "x"}, base: staticBase, ownBase: true, recipe: "r1",
		generate: func() (tree, []v1.Layer, error) { generated++; return marker("data"), nil, nil }}
	ctx := context.Background()

	if ok, err := recipeUpToDate(ctx, io.Discard, reg, d); err != nil || ok {
		t.Fatalf("empty registry: up to date = %v, %v; want false", ok, err)
	}
	img, err := d.build(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(ctx, io.Discard, reg, d, img); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if ok, err := recipeUpToDate(ctx, &out, reg, d); err != nil || !ok {
		t.Fatalf("after push: up to date = %v, %v; want true", ok, err)
	}
	if n := strings.Count(out.String(), " unchanged\n"); n != len(d.tags) {
		t.Errorf("reported %d unchanged tags, want %d:\n%s", n, len(d.tags), out.String())
	}
	d.recipe = "r2"
	if ok, err := recipeUpToDate(ctx, io.Discard, reg, d); err != nil || ok {
		t.Fatalf("changed recipe: up to date = %v, %v; want false", ok, err)
	}
	if generated != 1 {
		t.Errorf("generated %d times, want 1", generated)
	}
}
