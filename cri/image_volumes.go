package cri

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/specgen"
)

// imageVolume is a CRI mount whose image field names an image (KEP-4639): that image's filesystem, or its
// image_sub_path, mounted read-only at Path on the host and bind-mounted into the container from there.
type imageVolume struct {
	Index   int    `json:"index"`    // in ContainerConfig.mounts
	ImageID string `json:"image_id"` // reported as the mount's image.image_ref
	Path    string `json:"path"`     // <bundle>/volumes/<index>
}

// imageVolumeUser is who holds a container's volume images: not the container id, which holds its rootfs image,
// the same image as a volume's at times.
func imageVolumeUser(containerID string) string { return containerID + "/volumes" }

// acquireImageVolumes checks the image mounts of cfg and acquires their images, which must have been pulled. On
// error vols holds those acquired, for the caller's undo (releaseImageVolumes).
func (s *RuntimeServer) acquireImageVolumes(id, bundle string, cfg *runtimeapi.ContainerConfig) (vols []imageVolume, err error) {
	for i, m := range cfg.GetMounts() {
		ref := m.GetImage().GetImage()
		if ref == "" {
			continue
		}
		field := fmt.Sprintf("config.mounts[%d]", i)
		switch {
		case !m.GetReadonly():
			return vols, errdefs.InvalidArgument(field+".readonly", "an image volume must be read-only")
		case m.GetHostPath() != "":
			return vols, errdefs.InvalidArgument(field+".host_path", "must be empty for an image volume")
		}
		img, err := s.opts.Images.Acquire(ref, imageVolumeUser(id))
		if err != nil {
			return vols, fmt.Errorf("%s.image: %q: %w", field, ref, err)
		}
		vols = append(vols, imageVolume{Index: i, ImageID: img.ID, Path: filepath.Join(bundle, "volumes", strconv.Itoa(i))})
	}
	return vols, nil
}

// mountImageVolumes mounts the acquired image volumes, idmapped with idmap (the pod's user namespace) if set.
func (s *RuntimeServer) mountImageVolumes(cfg *runtimeapi.ContainerConfig, vols []imageVolume, idmap *image.IDMap) error {
	for _, v := range vols {
		img, err := s.opts.Images.Status(v.ImageID)
		if err != nil {
			return err
		}
		sub := cfg.GetMounts()[v.Index].GetImageSubPath()
		if err := s.opts.Images.MountReadOnly(img, sub, v.Path, idmap); err != nil {
			if errdefs.IsNotFound(err) {
				return errdefs.InvalidArgument(fmt.Sprintf("config.mounts[%d].image_sub_path", v.Index), "%q does not exist in image %s", sub, img.ID)
			}
			return err
		}
	}
	return nil
}

// unmountImageVolumes unmounts a container's image volumes; idempotent.
func (s *RuntimeServer) unmountImageVolumes(vols []imageVolume) error {
	var errs []error
	for _, v := range vols {
		errs = append(errs, s.opts.Images.Unmount(v.Path))
	}
	return errors.Join(errs...)
}

// releaseImageVolumes ends the container's use of its volume images; idempotent.
func (s *RuntimeServer) releaseImageVolumes(id string, vols []imageVolume) error {
	var errs []error
	for _, v := range vols {
		if err := s.opts.Images.Release(v.ImageID, imageVolumeUser(id)); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// statusMounts are the container's mounts as ContainerStatus reports them: as configured, with the digest of each
// image volume's image in image.image_ref.
func statusMounts(rec containerRecord) []*runtimeapi.Mount {
	mounts := rec.Config.GetMounts()
	if len(rec.ImageVolumes) == 0 {
		return mounts
	}
	out := make([]*runtimeapi.Mount, len(mounts))
	copy(out, mounts)
	for _, v := range rec.ImageVolumes {
		if v.Index >= len(out) {
			continue
		}
		m := proto.Clone(out[v.Index]).(*runtimeapi.Mount)
		m.Image.ImageRef = v.ImageID
		out[v.Index] = m
	}
	return out
}

// withImageVolumes points the oci mounts of image volumes at their host mounts.
func withImageVolumes(mounts []specgen.Mount, vols []imageVolume) {
	for _, v := range vols {
		mounts[v.Index].HostPath, mounts[v.Index].Readonly = v.Path, true
	}
}
