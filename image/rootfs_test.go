package image

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A 60-layer image mounts (its absolute lower dirs are far past one page of mount options), upper layers win,
// writes land in the upper dir, and unmounting is idempotent.
func TestMountRootfsDeep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	s := &Service{root: root, snapshots: filepath.Join(root, "snapshots", "with-a-rather-long-directory-name-to-pad-paths")}
	var img Image
	for i := range 60 {
		l := Layer{ChainID: digest.FromString(fmt.Sprint(i))}
		dir := s.snapshotDir(l.ChainID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("layer-%d", i)), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "top"), []byte(fmt.Sprint(i)), 0o644)
		img.Layers = append(img.Layers, l)
	}
	target := filepath.Join(root, "rootfs")
	if err := s.MountRootfs(img, filepath.Join(root, "upper"), filepath.Join(root, "work"), target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountRootfs(target) })
	if b, _ := os.ReadFile(filepath.Join(target, "top")); string(b) != "59" {
		t.Errorf("top = %q, want the top-most layer's 59", b)
	}
	for _, f := range []string{"layer-0", "layer-59"} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Error(err)
		}
	}
	os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
	if _, err := os.Stat(filepath.Join(root, "upper", "new")); err != nil {
		t.Errorf("write did not land in upper: %v", err)
	}
	for range 2 {
		if err := UnmountRootfs(target); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "top")); err == nil {
		t.Error("still mounted")
	}
}
