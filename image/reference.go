package image

import (
	"github.com/distribution/reference"

	"github.com/berthcri/berth/internal/errdefs"
)

// parseRef normalises ref as Docker and containerd do: "busybox" is docker.io/library/busybox:latest, a missing
// tag is "latest", and a reference with both a tag and a digest keeps only the digest (the digest decides what
// is pulled, so the tag would be a claim nothing checked).
func parseRef(ref string) (reference.Named, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("image", "malformed reference %q: %v", ref, err)
	}
	return named, nil
}
