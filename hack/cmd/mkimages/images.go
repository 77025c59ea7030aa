package main

import (
	"archive/tar"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

type baseKind int

const (
	noBase baseKind = iota
	staticBase
	glibcBase
)

const (
	// labelKey marks every image with its definition, so two definitions never share an image id
	// (the sandbox image must differ from pause:3.9, benchmark images from validation ones).
	labelKey = "org.berthcri.testbed.image"
	// recipeKey holds imageDef.recipe.
	recipeKey = "org.berthcri.testbed.recipe"
)

// imageDef is one image pushed under one or more tags of one repository.
type imageDef struct {
	repo string
	tags []string
	base baseKind
	// ownBase merges the base into the image's single layer instead of sharing the base layer,
	// so pulling the image downloads and unpacks real content (image benchmarks).
	ownBase bool
	files   tree // the image's own layer; nil for none
	config  v1.Config
	// generate, if set, makes files and further layers on demand (benchmark data takes seconds).
	generate func() (tree, []v1.Layer, error)
	// recipe, if set, names everything a generated image derives from; it is stored as a label, and
	// an image in the registry with the same recipe is up to date without generating anything.
	recipe string
}

func (d imageDef) String() string { return d.repo + ":" + strings.Join(d.tags, ",") }

// bases holds the two base trees and their shared layers, built once.
type bases struct {
	static, glibc           tree
	staticLayer, glibcLayer v1.Layer
}

func newBases(static, dynamic busybox, glibcLibs map[string][]byte) (*bases, error) {
	b := &bases{static: baseTree(static), glibc: glibcTree(dynamic, glibcLibs)}
	var err error
	if b.staticLayer, err = b.static.layer(); err != nil {
		return nil, fmt.Errorf("static base layer: %w", err)
	}
	if b.glibcLayer, err = b.glibc.layer(); err != nil {
		return nil, fmt.Errorf("glibc base layer: %w", err)
	}
	return b, nil
}

// build assembles the image: layers, then a config written whole (fixed time, platform, history,
// labels), so nothing of the build machine or the build time reaches the digest.
func (d imageDef) build(b *bases) (v1.Image, error) {
	var layers, generated []v1.Layer
	files := d.files
	if d.generate != nil {
		var err error
		if files, generated, err = d.generate(); err != nil {
			return nil, fmt.Errorf("image %s: %w", d, err)
		}
	}
	if d.base != noBase {
		baseTree, baseLayer := b.static, b.staticLayer
		if d.base == glibcBase {
			baseTree, baseLayer = b.glibc, b.glibcLayer
		}
		if d.ownBase {
			merged := tree{}
			merged.merge(baseTree)
			merged.merge(files)
			files = merged
		} else {
			layers = append(layers, baseLayer)
		}
	}
	if len(files) > 0 {
		l, err := files.layer()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d, err)
		}
		layers = append(layers, l)
	}
	layers = append(layers, generated...)

	cfg := v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       d.config,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	if len(cfg.Config.Env) == 0 && d.base != noBase {
		cfg.Config.Env = []string{envPath}
	}
	cfg.Config.Labels = map[string]string{labelKey: d.String()} // encoding/json sorts map keys
	if d.recipe != "" {
		cfg.Config.Labels[recipeKey] = d.recipe
	}
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("image %s layer %d: %w", d, i, err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, v1.History{Created: v1.Time{Time: epoch}, CreatedBy: fmt.Sprintf("berth mkimages %s layer %d", d.repo, i)})
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	img, err = mutate.ConfigFile(img, &cfg)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	return img, nil
}

// marker is a one-file tree: an empty file that tells images apart.
func marker(name string) tree {
	t := tree{}
	t.file(name, 0o644, nil)
	return t
}

// validationImages are the images critest's validation specs pull, under the local repositories of
// their original names (the runtime maps registry.k8s.io, gcr.io, ... to the test bed registry).
func validationImages(helpers map[string][]byte) []imageDef {
	const staging = "k8s-staging-cri-tools/"
	pause := tree{}
	pause.file("pause", 0o755, helpers["pause"])
	pauseConfig := v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}

	nginx := func() tree {
		t := tree{}
		t.file("usr/sbin/nginx", 0o755, helpers["nginx"])
		t.dir("var/run", 0o755)
		return t
	}
	nginxConfig := func(env ...string) v1.Config {
		return v1.Config{
			Cmd:          []string{"nginx", "-g", "daemon off;"},
			Env:          append([]string{envPath}, env...),
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
			StopSignal:   "SIGQUIT",
		}
	}

	httpd := tree{}
	httpd.file("usr/local/bin/httpd-foreground", 0o755, []byte(httpdForeground))
	httpd.file("var/www/index.html", 0o644, []byte("<html><body><h1>It works!</h1></body></html>\n"))

	nnp := tree{}
	nnp.add("usr/local/bin/nnp", entry{typ: tar.TypeReg, mode: 0o4755, data: helpers["nnp"]})

	predefined := tree{}
	predefined.file("etc/passwd", 0o644, []byte(passwdFile+"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"))
	predefined.file("etc/group", 0o644, []byte(groupFile+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"))
	predefined.file("etc/shadow", 0o640, shadowFor(passwdFile+"default-user:x:1000:1000::/home/default-user:/bin/sh"))
	predefined.add("home/default-user", entry{typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000})

	user := func(repo, u string) imageDef {
		return imageDef{repo: staging + repo, tags: []string{"latest"}, base: staticBase, config: v1.Config{Cmd: []string{"sh"}, User: u}}
	}
	withFile := func(repo string, tags []string, file string) imageDef {
		return imageDef{repo: staging + repo, tags: tags, base: staticBase, files: marker(file), config: v1.Config{Cmd: []string{"sh"}}}
	}
	return []imageDef{
		{repo: "e2e-test-images/busybox", tags: []string{"1.29-2", "latest"}, base: glibcBase, config: v1.Config{Cmd: []string{"sh"}}},
		{repo: "e2e-test-images/nginx", tags: []string{"1.14-2", "latest"}, base: staticBase, files: nginx(), config: nginxConfig()},
		{repo: "e2e-test-images/httpd", tags: []string{"2.4.39-4", "latest"}, base: staticBase, files: httpd, config: v1.Config{
			Cmd: []string{"httpd-foreground"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGWINCH",
		}},
		{repo: "e2e-test-images/nonewprivs", tags: []string{"1.3", "latest"}, base: staticBase, files: nnp, config: v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}}},
		{repo: "pause", tags: []string{"3.9", "latest"}, files: pause, config: pauseConfig},
		{repo: "pause", tags: []string{"3.10", "3.10.1", "3.8", "3.6", "sandbox"}, files: pause, config: pauseConfig},
		user("test-image-user-uid", "1002"),
		user("test-image-user-username", "www-data"),
		user("test-image-user-uid-group", "1003:1004"),
		user("test-image-user-username-group", "www-data:1004"),
		{repo: staging + "test-image-predefined-group", tags: []string{"latest"}, base: staticBase, files: predefined, config: v1.Config{Cmd: []string{"sh"}, User: "1000"}},
		{repo: staging + "hostnet-nginx-amd64", tags: []string{"latest"}, base: staticBase, files: nginx(), config: nginxConfig("NGINX_LISTEN=:12003")},
		withFile("test-image-latest", []string{"latest"}, "test-image-latest"),
		withFile("test-image-tag", []string{"test", "latest"}, "test"),
		withFile("test-image-tag", []string{"all"}, "all"),
		withFile("test-image-1", []string{"latest"}, "test-image-1"),
		withFile("test-image-2", []string{"latest"}, "test-image-2"),
		withFile("test-image-3", []string{"latest"}, "test-image-3"),
		withFile("test-image-tags", []string{"1", "2", "3", "latest"}, "same-image"),
		// critest pulls this one by a digest of the real registry, impossible offline; the tag
		// only keeps the repository listable.
		withFile("test-image-digest", []string{"latest"}, "test-image-digest"),
		{repo: "docker/library/busybox", tags: []string{"1.35.0-glibc", "1-glibc"}, base: glibcBase, ownBase: true, files: marker(".busybox-glibc"), config: v1.Config{Cmd: []string{"sh"}}},
		{repo: "docker/library/busybox", tags: []string{"1", "1-uclibc", "1-musl", "latest"}, base: staticBase, ownBase: true, files: marker(".busybox-static"), config: v1.Config{Cmd: []string{"sh"}}},
	}
}

// httpdForeground mimics the httpd image's entry point on busybox httpd: it logs a line naming
// httpd (the multi-container spec greps the log) and stops on TERM, INT and WINCH (the image's
// stop signal).
const httpdForeground = `#!/bin/sh
echo "httpd-foreground: starting busybox httpd on :80"
busybox httpd -f -p 80 -h /var/www &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT WINCH
wait "$pid"
`
