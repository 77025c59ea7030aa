package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/internal/errdefs"
)

// Descriptor names one blob of an image.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// Manifest is a manifest or index exactly as the registry served it.
type Manifest struct {
	Digest digest.Digest
	Data   []byte
}

// Image is a reference resolved, on one endpoint, to the image for this node's platform.
type Image struct {
	// Endpoint is where the reference was resolved; blobs are fetched from the same place.
	Endpoint Endpoint
	// Digest is what the reference points to (an index for multi-platform images): the image's repo digest.
	Digest digest.Digest
	// Manifests holds the index, if any, and the platform's image manifest.
	Manifests []Manifest
	Config    Descriptor
	// RawConfig is the config blob, verified against Config.Digest.
	RawConfig []byte
	// Layers are bottom-most first.
	Layers []Descriptor

	ref    string
	repo   string
	client *http.Client
}

// Resolve finds ref on its registry's endpoints in order and returns the manifest and config of the image for
// this node's platform (linux/GOARCH). The first endpoint that answers wins; when all fail, the error of the
// last one is returned, mentioning the others.
func (c *Client) Resolve(ctx context.Context, ref reference.Named, auth *Auth) (*Image, error) {
	eps, err := Endpoints(c.cfg, reference.Domain(ref))
	if err != nil {
		return nil, err
	}
	var last error
	var earlier []string
	for _, ep := range eps {
		img, err := c.resolveAt(ctx, ep, ref, auth)
		if err == nil {
			return img, nil
		}
		err = classify(err, ep.Host, ref.String())
		if ctx.Err() != nil {
			return nil, err
		}
		if last != nil {
			earlier = append(earlier, last.Error())
		}
		last = err
		c.log.Warn("registry endpoint failed", "ref", ref.String(), "host", ep.Host, "err", err)
	}
	if len(earlier) > 0 {
		return nil, fmt.Errorf("%w (earlier endpoints: %s)", last, strings.Join(earlier, "; "))
	}
	return nil, last
}

func (c *Client) resolveAt(ctx context.Context, ep Endpoint, ref reference.Named, auth *Auth) (*Image, error) {
	var opts []name.Option
	if ep.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(ep.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("registry host %q: %v: %w", ep.Host, err, errdefs.ErrInvalidArgument)
	}
	repo := reg.Repo(reference.Path(ref))
	var target name.Reference = repo.Tag("latest")
	switch r := ref.(type) {
	case reference.Digested:
		target = repo.Digest(r.Digest().String())
	case reference.Tagged:
		target = repo.Tag(r.Tag())
	}
	base, err := c.baseTransport(ep)
	if err != nil {
		return nil, err
	}
	creds, err := credentials(ep, auth)
	if err != nil {
		return nil, err
	}
	// The authenticated transport (a transport.Wrapper) is shared by remote.Get and our blob fetches, so the
	// ping and token exchange happen once per pull.
	rt, err := transport.NewWithContext(ctx, reg, creds, &schemeTransport{host: ep.Host, scheme: ep.Scheme, inner: base},
		[]string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(target, remote.WithContext(ctx), remote.WithTransport(rt))
	if err != nil {
		return nil, err
	}
	top, err := digest.Parse(desc.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("manifest digest %q: %w", desc.Digest, err)
	}
	out := &Image{
		Endpoint:  ep,
		Digest:    top,
		Manifests: []Manifest{{Digest: top, Data: desc.Manifest}},
		ref:       ref.String(),
		repo:      reference.Path(ref),
		client:    &http.Client{Transport: rt},
	}
	img, err := out.platformImage(desc)
	if err != nil {
		return nil, err
	}
	if err := out.readManifest(img); err != nil {
		return nil, err
	}
	return out, nil
}

// platformImage returns the image desc points to, or for an index the entry for linux/GOARCH, whose manifest
// it adds to Manifests.
func (im *Image) platformImage(desc *remote.Descriptor) (v1.Image, error) {
	switch {
	case desc.MediaType.IsImage():
		return desc.Image()
	case !desc.MediaType.IsIndex():
		return nil, errdefs.FailedPrecondition("%s: unsupported manifest media type %q", im.ref, desc.MediaType)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	child, ok := platformChild(m.Manifests)
	if !ok {
		return nil, fmt.Errorf("%s has no image for platform linux/%s: %w", im.ref, runtime.GOARCH, errdefs.ErrNotFound)
	}
	img, err := idx.Image(child.Digest)
	if err != nil {
		return nil, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	d, err := digest.Parse(child.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("manifest digest %q: %w", child.Digest, err)
	}
	im.Manifests = append(im.Manifests, Manifest{Digest: d, Data: raw})
	return img, nil
}

// readManifest fills Config, RawConfig and Layers from img, validating every digest it will use as a file name.
func (im *Image) readManifest(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if !m.Config.MediaType.IsConfig() {
		return errdefs.FailedPrecondition("%s is not a container image: config media type %q", im.ref, m.Config.MediaType)
	}
	if im.Config, err = descriptor(m.Config); err != nil {
		return err
	}
	if im.RawConfig, err = img.RawConfigFile(); err != nil {
		return err
	}
	for _, l := range m.Layers {
		d, err := descriptor(l)
		if err != nil {
			return err
		}
		im.Layers = append(im.Layers, d)
	}
	return nil
}

func descriptor(d v1.Descriptor) (Descriptor, error) {
	dg, err := digest.Parse(d.Digest.String())
	if err != nil {
		return Descriptor{}, fmt.Errorf("blob digest %q: %v: %w", d.Digest, err, errdefs.ErrFailedPrecondition)
	}
	if d.Size < 0 {
		return Descriptor{}, errdefs.FailedPrecondition("blob %s: negative size %d", dg, d.Size)
	}
	return Descriptor{MediaType: string(d.MediaType), Digest: dg, Size: d.Size}, nil
}

// platformChild picks the index entry for linux/GOARCH; an entry without a platform is taken only when no entry
// names the platform.
func platformChild(ms []v1.Descriptor) (v1.Descriptor, bool) {
	var unnamed []v1.Descriptor
	for _, m := range ms {
		if !m.MediaType.IsImage() {
			continue
		}
		if m.Platform == nil {
			unnamed = append(unnamed, m)
			continue
		}
		if m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return m, true
		}
	}
	if len(unnamed) > 0 {
		return unnamed[0], true
	}
	return v1.Descriptor{}, false
}

// Fetch opens blob d on the endpoint the image was resolved on. The caller verifies size and digest as it reads.
func (im *Image) Fetch(ctx context.Context, d Descriptor) (io.ReadCloser, error) {
	host := im.Endpoint.Host
	u := url.URL{Scheme: im.Endpoint.Scheme, Host: host, Path: "/v2/" + im.repo + "/blobs/" + d.Digest.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := im.client.Do(req)
	if err != nil {
		return nil, classify(err, host, im.ref)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, classify(err, host, fmt.Sprintf("blob %s of %s", d.Digest, im.ref))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		resp.Body.Close()
		return nil, errdefs.FailedPrecondition("blob %s from %s: %d bytes, the manifest says %d", d.Digest, host,
			resp.ContentLength, d.Size)
	}
	return resp.Body, nil
}
