package cri

import (
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
)

// ImageServer implements the CRI ImageService over the image store.
type ImageServer struct {
	runtimeapi.UnimplementedImageServiceServer
	images ImageStore
}

func NewImageServer(s ImageStore) *ImageServer {
	return &ImageServer{images: s}
}

// imageRef returns the reference an ImageSpec names, which every image RPC requires.
func imageRef(spec *runtimeapi.ImageSpec) (string, error) {
	if spec.GetImage() == "" {
		return "", errdefs.InvalidArgument("image.image", "empty")
	}
	return spec.GetImage(), nil
}

func toCRIImage(img image.Image) *runtimeapi.Image {
	uid, username := imageUser(img.Config.Config.User)
	return &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Uid:         uid,
		Username:    username,
		Pinned:      img.Pinned,
	}
}

// imageUser splits the config's User ("uid", "name", "uid:gid", "name:group") into the CRI's uid or username;
// the two are exclusive.
func imageUser(user string) (*runtimeapi.Int64Value, string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &runtimeapi.Int64Value{Value: uid}, ""
	}
	return nil, u
}
