package image

import (
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/internal/errdefs"
)

// minIDPrefix is the shortest id prefix accepted, as in `docker images`' short ids. Shorter hex strings are
// too likely to be meant as names ("cafe", "beef") to be matched against ids.
const minIDPrefix = 12

// List returns every image, removed ones (still used by containers) excepted.
func (s *Service) List() []Image {
	var out []Image
	for _, r := range s.records.List() {
		if !r.Removed {
			out = append(out, s.toImage(r))
		}
	}
	return out
}

// Status returns the image ref names: a full id ("sha256:<hex>"), a reference (normalised like Pull's: a tag
// or a digest), or an id prefix of at least 12 hex digits. An unknown image is errdefs.ErrNotFound.
func (s *Service) Status(ref string) (Image, error) {
	r, err := s.find(ref)
	if err != nil {
		return Image{}, err
	}
	return s.toImage(r), nil
}

func (s *Service) find(ref string) (record, error) {
	if ref == "" {
		return record{}, errdefs.InvalidArgument("image", "empty reference")
	}
	if d, err := digest.Parse(ref); err == nil {
		if r, ok := s.records.Get(d.String()); ok && !r.Removed {
			return r, nil
		}
		return record{}, errdefs.NotFound("image", ref)
	}
	all := s.records.List()
	if named, err := reference.ParseDockerRef(ref); err == nil {
		name := named.String()
		for _, r := range all {
			if !r.Removed && (slices.Contains(r.RepoTags, name) || slices.Contains(r.RepoDigests, name)) {
				return r, nil
			}
		}
	}
	prefix := strings.TrimPrefix(ref, string(digest.SHA256)+":")
	if len(prefix) < minIDPrefix || strings.Trim(prefix, "0123456789abcdef") != "" {
		return record{}, errdefs.NotFound("image", ref)
	}
	var found []record
	for _, r := range all {
		if !r.Removed && strings.HasPrefix(digest.Digest(r.ID).Encoded(), prefix) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return record{}, errdefs.NotFound("image", ref)
	case 1:
		return found[0], nil
	}
	return record{}, errdefs.InvalidArgument("image", "id prefix %q matches %d images", ref, len(found))
}
