package cri

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/sandbox"
)

// pulledImage serves a random image from an in-process registry and pulls it into a new image service.
func pulledImage(t *testing.T) (svc *image.Service, root, ref string, img image.Image) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref = strings.TrimPrefix(srv.URL, "http://") + "/cri/volume:1"
	randomImg, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(must(name.ParseReference(ref)), randomImg); err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	if svc, err = image.New(context.Background(), image.Options{RootDir: root, Registry: config.Default().Registry}); err != nil {
		t.Fatal(err)
	}
	if img, err = svc.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	return svc, root, ref, img
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAcquireImageVolumes(t *testing.T) {
	needsRoot(t)
	svc, root, ref, img := pulledImage(t)
	s := &RuntimeServer{opts: RuntimeOptions{Images: HostImages(svc)}}
	volume := func(ro bool) *runtimeapi.Mount {
		return &runtimeapi.Mount{ContainerPath: "/v", Readonly: ro, Image: &runtimeapi.ImageSpec{Image: ref}}
	}
	tests := map[string]struct {
		mounts   []*runtimeapi.Mount
		want     []imageVolume
		wantErr  error
		errField string
	}{
		"none": {mounts: []*runtimeapi.Mount{{ContainerPath: "/h", HostPath: "/tmp"}}},
		"two volumes of one image": {
			mounts: []*runtimeapi.Mount{{ContainerPath: "/h", HostPath: "/tmp"}, volume(true), volume(true)},
			want:   []imageVolume{{Index: 1, ImageID: img.ID, Path: "/b/volumes/1"}, {Index: 2, ImageID: img.ID, Path: "/b/volumes/2"}},
		},
		"read-write": {mounts: []*runtimeapi.Mount{volume(true), volume(false)}, wantErr: errdefs.ErrInvalidArgument, errField: "mounts[1].readonly"},
		"host path too": {mounts: []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: "/tmp", Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}}},
			wantErr: errdefs.ErrInvalidArgument, errField: "mounts[0].host_path"},
		"empty image spec": {mounts: []*runtimeapi.Mount{{ContainerPath: "/h", HostPath: "/tmp", Image: &runtimeapi.ImageSpec{}}}},
		"not pulled": {mounts: []*runtimeapi.Mount{volume(true), {ContainerPath: "/v", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "example.com/absent:1"}}},
			wantErr: errdefs.ErrNotFound, errField: "mounts[1].image"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			vols, err := s.acquireImageVolumes("c1", "/b", &runtimeapi.ContainerConfig{Mounts: tc.mounts})
			if rerr := s.releaseImageVolumes("c1", vols); rerr != nil { // what the volumes stage's undo does
				t.Fatal(rerr)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errField) {
					t.Fatalf("err = %v, want %v naming %s", err, tc.wantErr, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(vols, tc.want) {
				t.Errorf("volumes %+v, want %+v", vols, tc.want)
			}
			if err := s.releaseImageVolumes("c1", vols); err != nil { // idempotent
				t.Fatal(err)
			}
		})
	}
	// Every use was released, failed acquisitions included: removing the image deletes its record at once.
	if err := svc.Remove(img.ID); err != nil {
		t.Fatal(err)
	}
	if records, err := os.ReadDir(filepath.Join(root, "images")); err != nil || len(records) != 0 {
		t.Errorf("image records after removal: %v (%v), want none", records, err)
	}
}

func TestStatusMounts(t *testing.T) {
	host := &runtimeapi.Mount{ContainerPath: "/h", HostPath: "/tmp"}
	vol := &runtimeapi.Mount{ContainerPath: "/v", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "app:1"}}
	rec := containerRecord{Config: &runtimeapi.ContainerConfig{Mounts: []*runtimeapi.Mount{host, vol}},
		ImageVolumes: []imageVolume{{Index: 1, ImageID: "sha256:abc", Path: "/b/volumes/1"}}}
	got := statusMounts(rec)
	if len(got) != 2 || got[0] != host || got[1].GetImage().GetImageRef() != "sha256:abc" || got[1].GetImage().GetImage() != "app:1" {
		t.Errorf("status mounts %v", got)
	}
	if vol.GetImage().GetImageRef() != "" {
		t.Error("the recorded config was changed")
	}
	if got := statusMounts(containerRecord{Config: rec.Config}); !proto.Equal(got[1], vol) {
		t.Errorf("without volumes: %v", got)
	}
}

func TestPodUserNS(t *testing.T) {
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	pod := func(u *runtimeapi.UserNamespace) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: u}}}}
	}
	tests := map[string]struct {
		cfg  *runtimeapi.PodSandboxConfig
		want *sandbox.UserNamespace
	}{
		"no config": {cfg: &runtimeapi.PodSandboxConfig{}},
		"no userns": {cfg: pod(nil)},
		"node":      {cfg: pod(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE})},
		"pod": {cfg: pod(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}),
			want: &sandbox.UserNamespace{UIDs: []sandbox.IDMapping{{HostID: 100000, Size: 65536}}, GIDs: []sandbox.IDMapping{{HostID: 100000, Size: 65536}}}},
	}
	for name, tc := range tests {
		if got := podUserNS(tc.cfg); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: podUserNS = %+v, want %+v", name, got, tc.want)
		}
	}
}
