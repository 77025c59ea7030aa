package cri

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

func TestImageUser(t *testing.T) {
	for _, tc := range []struct {
		user     string
		uid      *int64
		username string
	}{
		{"", nil, ""},
		{"1002", ptr(1002), ""},
		{"www-data", nil, "www-data"},
		{"1003:1004", ptr(1003), ""},
		{"www-data:1004", nil, "www-data"},
		{"0", ptr(0), ""},
		{":1004", nil, ""},
	} {
		uid, username := imageUser(tc.user)
		if (uid == nil) != (tc.uid == nil) || uid != nil && uid.Value != *tc.uid || username != tc.username {
			t.Errorf("imageUser(%q) = %v, %q; want %v, %q", tc.user, uid, username, tc.uid, tc.username)
		}
	}
}

func ptr(v int64) *int64 { return &v }

// collectStream is a StreamImages server stream that keeps what is sent.
type collectStream struct {
	grpc.ServerStream
	sent []*runtimeapi.StreamImagesResponse
}

func (s *collectStream) Send(r *runtimeapi.StreamImagesResponse) error {
	s.sent = append(s.sent, r)
	return nil
}

// needsRoot skips a test of the real image service: unpacking a layer chowns its files to their owners in the
// image. The fakes (fake_test.go) cover the same RPCs without root.
func needsRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unpacking image layers needs root (chown)")
	}
}

func TestImageServer(t *testing.T) {
	needsRoot(t)
	ctx := context.Background()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/cri/app:1"
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	svc, err := image.New(ctx, image.Options{RootDir: root, Registry: config.Default().Registry})
	if err != nil {
		t.Fatal(err)
	}
	s := NewImageServer(svc)

	for name, call := range map[string]func() error{
		"PullImage":   func() error { _, err := s.PullImage(ctx, &runtimeapi.PullImageRequest{}); return err },
		"ImageStatus": func() error { _, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{}); return err },
		"RemoveImage": func() error { _, err := s.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{}); return err },
	} {
		if err := call(); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "image.image") {
			t.Errorf("%s without an image = %v, want invalid argument naming image.image", name, err)
		}
	}
	st, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil || st.Image != nil {
		t.Errorf("ImageStatus of an absent image = %v, %v; want an empty response", st, err)
	}

	pulled, err := s.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatal(err)
	}
	configName, _ := img.ConfigName()
	if pulled.ImageRef != configName.String() {
		t.Errorf("image_ref = %s, want the config digest %s", pulled.ImageRef, configName)
	}
	list, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 || list.Images[0].Id != pulled.ImageRef || list.Images[0].Size == 0 {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	filtered, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{
		Image: &runtimeapi.ImageSpec{Image: "absent:1"}}})
	if err != nil || len(filtered.Images) != 0 {
		t.Errorf("ListImages filtered on an absent image = %v, %v", filtered, err)
	}
	stream := &collectStream{}
	if err := s.StreamImages(&runtimeapi.StreamImagesRequest{}, stream); err != nil || len(stream.sent) != 1 ||
		len(stream.sent[0].Images) != 1 {
		t.Errorf("StreamImages sent %v, %v", stream.sent, err)
	}

	st, err = s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: pulled.ImageRef}, Verbose: true})
	if err != nil || st.Image.GetId() != pulled.ImageRef {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	var info struct {
		ImageSpec struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		} `json:"imageSpec"`
		Layers []image.Layer
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || len(info.Layers) != 2 ||
		len(info.ImageSpec.RootFS.DiffIDs) != 2 {
		t.Errorf("verbose info = %s (%v)", st.Info["info"], err)
	}

	fs, err := s.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
	if u := fs.ImageFilesystems[0]; u.Timestamp == 0 || u.FsId.GetMountpoint() != root || u.UsedBytes.GetValue() == 0 ||
		u.InodesUsed.GetValue() == 0 {
		t.Errorf("ImageFsInfo = %v", u)
	}

	for range 2 { // the second removal of the same image succeeds too
		if _, err := s.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("RemoveImage: %v", err)
		}
	}
	if list, _ := s.ListImages(ctx, &runtimeapi.ListImagesRequest{}); len(list.Images) != 0 {
		t.Errorf("ListImages after RemoveImage = %v", list.Images)
	}
}
