package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// What a pull reads before its layers comes from the registry, so every part of it is bounded before it is
// buffered: a manifest or index by registry.max_manifest_size, the config by registry.max_config_size, each also by
// the size its descriptor gives (a body is never read past it); an index tree by MaxIndexDepth and MaxIndexEntries;
// an image by the number of layers overlayfs can stack (Client.MaxLayers).
const (
	// MaxIndexDepth is how many indexes may stand above an image manifest. A multi-platform image has one; the
	// OCI image spec allows nesting them, which nothing in common use does more than twice.
	MaxIndexDepth = 4
	// MaxIndexEntries is how many entries one index may list. Multi-platform images list about two per platform
	// (the image and its attestation manifest): a few dozen.
	MaxIndexEntries = 1024
)

// limits are the caps of one client, from its config.
type limits struct {
	manifestSize int64
	configSize   int64
	layers       int // 0: no cap
}

// Media types Resolve follows, besides the OCI ones.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

var manifestAccept = strings.Join([]string{ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList,
	ocispec.MediaTypeImageManifest, mediaTypeDockerManifest}, ", ")

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList
}
func isImageManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}
func isConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == mediaTypeDockerConfig
}

// walk resolves target (a tag or a digest) on im's endpoint: it follows indexes, one entry each, down to the image
// manifest for this node's platform, then reads the manifest's config. Manifests gets every document on the way.
func (im *Image) walk(ctx context.Context, target string, want digest.Digest) error {
	m, mt, err := im.fetchManifest(ctx, target, Descriptor{Digest: want, Size: -1}, nil)
	if err != nil {
		return err
	}
	im.Digest = m.Digest
	var path []digest.Digest // the indexes above m
	for {
		im.Manifests = append(im.Manifests, m)
		switch {
		case isImageManifest(mt):
			return im.readManifest(ctx, m)
		case !isIndex(mt):
			return errdefs.FailedPrecondition("%s: manifest %s: unsupported media type %q", im.ref, m.Digest, mt)
		case len(path) == MaxIndexDepth:
			return errdefs.FailedPrecondition("%s: indexes nested deeper than %d", im.ref, MaxIndexDepth)
		}
		path = append(path, m.Digest)
		child, err := pickEntry(m, path)
		if err != nil {
			return fmt.Errorf("%s: %w", im.ref, err)
		}
		if isIndex(child.MediaType) && len(path) == MaxIndexDepth {
			return errdefs.FailedPrecondition("%s: indexes nested deeper than %d (index %s lists index %s)", im.ref,
				MaxIndexDepth, m.Digest, child.Digest)
		}
		if m, mt, err = im.fetchManifest(ctx, child.Digest.String(), child, path); err != nil {
			return err
		}
	}
}

// fetchManifest GETs the manifest or index ref names. want is what is known of it beforehand: its digest when ref
// is one, and its size and media type when it comes from an index entry (Size -1 when unknown). Nothing more than
// the cap, nor than want.Size, is ever read; the body must match want. above are the indexes that led here: a
// registry that answers with one of them has an index list itself, whatever digest it was asked for.
func (im *Image) fetchManifest(ctx context.Context, ref string, want Descriptor, above []digest.Digest) (Manifest, string, error) {
	what := "manifest " + im.ref
	if want.Digest != "" {
		what = "manifest " + want.Digest.String()
	}
	if want.MediaType != "" {
		what += " (" + want.MediaType + ")"
	}
	limit := im.limits.manifestSize
	if want.Size > limit {
		return Manifest{}, "", fmt.Errorf("%s: its descriptor says %d bytes, more than registry.max_manifest_size (%s): %w",
			what, want.Size, config.Size(limit), errdefs.ErrResourceExhausted)
	}
	u := url.URL{Scheme: im.Endpoint.Scheme, Host: im.Endpoint.Host, Path: "/v2/" + im.repo + "/manifests/" + ref}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Manifest{}, "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := im.client.Do(req)
	if err != nil {
		return Manifest{}, "", classify(err, im.Endpoint.Host, im.ref)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Manifest{}, "", classify(err, im.Endpoint.Host, im.ref)
	}
	body, err := readBody(resp, what, im.Endpoint.Host, want.Size, limit, "registry.max_manifest_size")
	if err != nil {
		return Manifest{}, "", err
	}
	alg := digest.Canonical
	if want.Digest != "" {
		alg = want.Digest.Algorithm()
	}
	got := alg.FromBytes(body)
	if slices.Contains(above, got) {
		return Manifest{}, "", errdefs.FailedPrecondition("index %s lists itself: %s answers %s with it", got,
			im.Endpoint.Host, ref)
	}
	if want.Digest != "" && got != want.Digest {
		return Manifest{}, "", errdefs.FailedPrecondition("%s from %s: content has digest %s", what, im.Endpoint.Host, got)
	}
	mt, err := mediaTypeOf(body, resp.Header.Get("Content-Type"), want.MediaType)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("%s from %s: %w", what, im.Endpoint.Host, err)
	}
	return Manifest{Digest: got, Data: body}, mt, nil
}

// readBody reads a response of at most limit bytes (the cap, named by key) and, when size >= 0, exactly size bytes:
// a Content-Length beyond either is refused before reading, a body streaming past them is cut off one byte later.
func readBody(resp *http.Response, what, host string, size, limit int64, key string) ([]byte, error) {
	n := resp.ContentLength
	switch {
	case n > limit:
		return nil, fmt.Errorf("%s from %s: %d bytes, more than %s (%s): %w", what, host, n, key, config.Size(limit),
			errdefs.ErrResourceExhausted)
	case size >= 0 && n >= 0 && n != size:
		return nil, errdefs.FailedPrecondition("%s from %s: %d bytes, its descriptor says %d", what, host, n, size)
	}
	max := limit
	if size >= 0 {
		max = size
	}
	var buf bytes.Buffer
	if n >= 0 {
		buf.Grow(int(n))
	}
	got, err := buf.ReadFrom(io.LimitReader(resp.Body, max+1))
	switch {
	case err != nil:
		return nil, classify(fmt.Errorf("read %s: %w", what, err), host, what)
	case got > max && size >= 0:
		return nil, errdefs.FailedPrecondition("%s from %s: more than the %d bytes its descriptor says", what, host, size)
	case got > max:
		return nil, fmt.Errorf("%s from %s: more than %s (%s): %w", what, host, key, config.Size(limit),
			errdefs.ErrResourceExhausted)
	case size >= 0 && got != size:
		return nil, errdefs.FailedPrecondition("%s from %s: got %d bytes, its descriptor says %d", what, host, got, size)
	}
	return buf.Bytes(), nil
}

// mediaTypeOf is a manifest's media type: its own mediaType field, else a known Content-Type the registry sent,
// else the media type of the descriptor that led to it, else what its fields make it (OCI leaves mediaType
// optional).
func mediaTypeOf(body []byte, contentType, descType string) (string, error) {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return "", errdefs.FailedPrecondition("not a manifest: %v", err)
	}
	if probe.MediaType != "" {
		return probe.MediaType, nil
	}
	if ct, _, err := mime.ParseMediaType(contentType); err == nil && (isIndex(ct) || isImageManifest(ct)) {
		return ct, nil
	}
	switch {
	case descType != "":
		return descType, nil
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", errdefs.FailedPrecondition("not a manifest: no media type, config or manifests")
}

// pickEntry returns the entry of index m to follow: the image manifest for linux/GOARCH, else an image entry without
// a platform, else a nested index for that platform or without one. path holds m and the indexes above it: an
// entry among them makes the index list itself.
func pickEntry(m Manifest, path []digest.Digest) (Descriptor, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(m.Data, &idx); err != nil {
		return Descriptor{}, errdefs.FailedPrecondition("index %s: %v", m.Digest, err)
	}
	if len(idx.Manifests) > MaxIndexEntries {
		return Descriptor{}, errdefs.FailedPrecondition("index %s lists %d entries, at most %d are followed",
			m.Digest, len(idx.Manifests), MaxIndexEntries)
	}
	best, rank := -1, 0
	for i, e := range idx.Manifests {
		r := entryRank(e)
		if r > rank {
			best, rank = i, r
		}
	}
	if best < 0 {
		return Descriptor{}, fmt.Errorf("index %s has no image for platform linux/%s: %w", m.Digest, runtime.GOARCH,
			errdefs.ErrNotFound)
	}
	e := idx.Manifests[best]
	d, err := descriptor(e)
	if err != nil {
		return Descriptor{}, fmt.Errorf("index %s: %w", m.Digest, err)
	}
	if slices.Contains(path, d.Digest) {
		return Descriptor{}, errdefs.FailedPrecondition("index %s lists itself (through %s)", d.Digest, m.Digest)
	}
	return d, nil
}

// entryRank orders index entries by preference; 0 is never followed.
func entryRank(e ocispec.Descriptor) int {
	named := e.Platform != nil
	ours := named && e.Platform.OS == "linux" && e.Platform.Architecture == runtime.GOARCH
	switch {
	case isImageManifest(e.MediaType) && ours:
		return 4
	case isImageManifest(e.MediaType) && !named:
		return 3
	case isIndex(e.MediaType) && ours:
		return 2
	case isIndex(e.MediaType) && !named:
		return 1
	}
	return 0
}

// parseImageManifest returns the config and layers image manifest m lists, checking what can be checked before
// anything is fetched: the config's media type and size, the number of layers, every digest.
func parseImageManifest(m Manifest, lim limits) (cfg Descriptor, layers []Descriptor, err error) {
	var man ocispec.Manifest
	if err := json.Unmarshal(m.Data, &man); err != nil {
		return Descriptor{}, nil, errdefs.FailedPrecondition("manifest %s: %v", m.Digest, err)
	}
	if !isConfig(man.Config.MediaType) {
		return Descriptor{}, nil, errdefs.FailedPrecondition("manifest %s is not a container image: config media type %q",
			m.Digest, man.Config.MediaType)
	}
	if lim.layers > 0 && len(man.Layers) > lim.layers {
		return Descriptor{}, nil, errdefs.FailedPrecondition("manifest %s lists %d layers; overlayfs stacks at most %d",
			m.Digest, len(man.Layers), lim.layers)
	}
	if cfg, err = descriptor(man.Config); err != nil {
		return Descriptor{}, nil, fmt.Errorf("manifest %s: config: %w", m.Digest, err)
	}
	if cfg.Size > lim.configSize {
		return Descriptor{}, nil, fmt.Errorf("config %s (%s): its descriptor says %d bytes, more than registry.max_config_size (%s): %w",
			cfg.Digest, cfg.MediaType, cfg.Size, config.Size(lim.configSize), errdefs.ErrResourceExhausted)
	}
	layers = make([]Descriptor, len(man.Layers))
	for i, l := range man.Layers {
		if layers[i], err = descriptor(l); err != nil {
			return Descriptor{}, nil, fmt.Errorf("manifest %s: layer %d: %w", m.Digest, i, err)
		}
	}
	return cfg, layers, nil
}

// readManifest fills Config, RawConfig and Layers from image manifest m.
func (im *Image) readManifest(ctx context.Context, m Manifest) error {
	cfg, layers, err := parseImageManifest(m, im.limits)
	if err != nil {
		return fmt.Errorf("%s: %w", im.ref, err)
	}
	raw, err := im.fetchConfig(ctx, cfg)
	if err != nil {
		return err
	}
	im.Config, im.RawConfig, im.Layers = cfg, raw, layers
	return nil
}

// fetchConfig reads config blob d, never past its descriptor's size (already checked against the cap).
func (im *Image) fetchConfig(ctx context.Context, d Descriptor) ([]byte, error) {
	what := fmt.Sprintf("config %s (%s)", d.Digest, d.MediaType)
	body, err := im.Fetch(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer body.Close()
	resp := &http.Response{Body: body, ContentLength: -1} // Fetch checked the Content-Length
	raw, err := readBody(resp, what, im.Endpoint.Host, d.Size, im.limits.configSize, "registry.max_config_size")
	if err != nil {
		return nil, err
	}
	if got := d.Digest.Algorithm().FromBytes(raw); got != d.Digest {
		return nil, errdefs.FailedPrecondition("%s from %s: content has digest %s", what, im.Endpoint.Host, got)
	}
	return raw, nil
}

// descriptor converts d, validating the digest (it becomes a file name) and the size.
func descriptor(d ocispec.Descriptor) (Descriptor, error) {
	if err := d.Digest.Validate(); err != nil {
		return Descriptor{}, errdefs.FailedPrecondition("blob digest %q: %v", d.Digest, err)
	}
	if !d.Digest.Algorithm().Available() {
		return Descriptor{}, errdefs.FailedPrecondition("blob %s: digest algorithm not available", d.Digest)
	}
	if d.Size < 0 {
		return Descriptor{}, errdefs.FailedPrecondition("blob %s: negative size %d", d.Digest, d.Size)
	}
	return Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, nil
}
