package image

import (
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// recordVersion is the version of image records on disk.
const recordVersion = 1

// Image is an image as berth knows it.
type Image struct {
	// ID is the config digest ("sha256:…"): PullImage's image_ref, Image.id and a container's image_id.
	ID          string
	RepoTags    []string
	RepoDigests []string
	// Size is the compressed size, as containerd reports it: the platform manifest, the config and the layer
	// blobs as the registry serves them. The unpacked size on disk is larger (see FsInfo).
	Size   int64
	Pinned bool
	// Config is the image config: env, entrypoint, cmd, user, working dir, labels, rootfs diff ids, history.
	Config ocispec.Image
	// Layers are bottom-most first.
	Layers []Layer
}

// Layer is one layer of an image.
type Layer struct {
	// Digest and Size are those of the blob as the registry serves it (usually compressed).
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType"`
	// DiffID is the digest of the uncompressed tar, as the image config lists it.
	DiffID digest.Digest `json:"diffID"`
	// ChainID names the layer together with all layers below it; it names the layer's snapshot dir.
	ChainID digest.Digest `json:"chainID"`
}

// record is the persisted state of one image, stored under its id. Changed only under Service.mu.
type record struct {
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags,omitempty"`
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Manifests are the indexes and manifests the image was pulled through; all are in the content store.
	Manifests []digest.Digest `json:"manifests"`
	Layers    []Layer         `json:"layers"`
	Config    ocispec.Image   `json:"config"`
	Size      int64           `json:"size"`
	// Users are the containers using the image (Acquire/Release). While there are any, nothing is freed.
	Users []string `json:"users,omitempty"`
	// Removed is set when the image was removed while in use: it is hidden and freed with its last user.
	Removed bool `json:"removed,omitempty"`
}

// refs is a set of content: blobs by digest and snapshots by chain id.
type refs struct {
	blobs []digest.Digest
	snaps []digest.Digest
}

// refs lists everything the image keeps alive.
func (r *record) refs() refs {
	out := refs{blobs: append(slices.Clone(r.Manifests), digest.Digest(r.ID))}
	for _, l := range r.Layers {
		out.blobs = append(out.blobs, l.Digest)
		out.snaps = append(out.snaps, l.ChainID)
	}
	return out
}

func (s *Service) toImage(r record) Image {
	return Image{
		ID:          r.ID,
		RepoTags:    slices.Clone(r.RepoTags),
		RepoDigests: slices.Clone(r.RepoDigests),
		Size:        r.Size,
		Pinned:      s.isPinned(r),
		Config:      r.Config,
		Layers:      slices.Clone(r.Layers),
	}
}

func (s *Service) isPinned(r record) bool { return s.pinnedAs(r) != "" }

// pinnedAs returns the name under which r is pinned, "" when it is not.
func (s *Service) pinnedAs(r record) string {
	pinned := *s.pinned.Load()
	for _, n := range slices.Concat(r.RepoTags, r.RepoDigests, []string{r.ID}) {
		if pinned[n] {
			return n
		}
	}
	return ""
}

// chainIDs computes the chain id of each layer from the diff ids: the first layer's is its diff id, each next
// one is the digest of "<chain id below> <diff id>" (OCI image spec, config.md).
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// addUnique appends v to list unless it is empty or already there.
func addUnique[T comparable](list []T, v T) []T {
	var zero T
	if v == zero || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
