package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
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
	limits limits
}

// Resolve finds ref on its registry's endpoints in order and returns the manifest and config of the image for
// this node's platform (linux/GOARCH), read under the caps of manifest.go. The first endpoint that answers wins;
// when all fail, the error of the last one is returned, mentioning the others. An endpoint is used only if it has the
// capabilities the pull needs (Usable): manifests and blobs come from the endpoint that resolved the reference.
func (c *Client) Resolve(ctx context.Context, ref reference.Named, auth *Auth) (*Image, error) {
	all, err := c.Endpoints(reference.Domain(ref))
	if err != nil {
		return nil, err
	}
	_, digested := ref.(reference.Digested)
	var eps []Endpoint
	for _, ep := range all {
		if ep.Usable(digested) {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, errdefs.FailedPrecondition("registry %s: no configured endpoint has the capabilities a pull of %s needs (%s)",
			reference.Domain(ref), ref, needed(digested))
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
	creds, err := c.credentials(ctx, ep, auth)
	if err != nil {
		return nil, err
	}
	// The authenticated transport (a transport.Wrapper) is shared by the manifest, config and layer fetches, so the
	// ping and token exchange happen once per pull.
	rt, err := transport.NewWithContext(ctx, reg, creds, &endpointTransport{ep: ep, ns: mirrorOf(ep, ref), inner: base},
		[]string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	im := &Image{
		Endpoint: ep,
		ref:      ref.String(),
		repo:     reference.Path(ref),
		client:   &http.Client{Transport: rt},
		limits:   c.limits(),
	}
	var want digest.Digest
	if d, ok := ref.(reference.Digested); ok {
		want = d.Digest()
	}
	if err := im.walk(ctx, target.Identifier(), want); err != nil {
		return nil, err
	}
	return im, nil
}

// mirrorOf is the registry a mirror endpoint stands in for, "" for the registry's own endpoint.
func mirrorOf(ep Endpoint, ref reference.Named) string {
	if !ep.Mirror {
		return ""
	}
	return reference.Domain(ref)
}

// Usable says whether a pull may use the endpoint: a digest reference needs pull, a tag also resolve.
func (ep Endpoint) Usable(digested bool) bool {
	return ep.Capabilities&needed(digested) == needed(digested)
}

func needed(digested bool) Capabilities {
	if digested {
		return CapPull
	}
	return CapPull | CapResolve
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
