package image

import (
	"archive/tar"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(64<<10, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func mustDigest(t *testing.T, f func() (v1.Hash, error)) v1.Hash {
	t.Helper()
	h, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// pullConcurrently pulls every ref at once and fails the test on any error.
func pullConcurrently(t *testing.T, s *Service, refs ...string) []Image {
	t.Helper()
	out := make([]Image, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() { out[i], errs[i] = s.Pull(context.Background(), ref, nil) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPullListStatusRemove(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, 3)
	ref1 := reg.push(t, "test/app:v1", img)
	ref2 := reg.push(t, "test/app:v2", img)
	root := t.TempDir()
	s := newService(t, root, config.RegistryConfig{})

	got := pullConcurrently(t, s, ref1, ref1)
	id := mustDigest(t, img.ConfigName).String()
	manifestDigest := mustDigest(t, img.Digest).String()
	for _, g := range got {
		if g.ID != id {
			t.Fatalf("pulled id %s, want the config digest %s", g.ID, id)
		}
	}
	layers := mustLayers(t, img)
	for _, l := range layers {
		if n := reg.gets(mustDigest(t, l.Digest)); n != 1 {
			t.Errorf("layer %s downloaded %d times by two concurrent pulls, want once", mustDigest(t, l.Digest), n)
		}
	}

	list := s.List()
	if len(list) != 1 {
		t.Fatalf("List() = %d images, want 1", len(list))
	}
	im := list[0]
	if !slices.Equal(im.RepoTags, []string{ref1}) {
		t.Errorf("RepoTags = %q, want [%s]", im.RepoTags, ref1)
	}
	wantDigest := reg.host + "/test/app@" + manifestDigest
	if !slices.Equal(im.RepoDigests, []string{wantDigest}) {
		t.Errorf("RepoDigests = %q, want [%s]", im.RepoDigests, wantDigest)
	}
	manifest, _ := img.RawManifest()
	config, _ := img.RawConfigFile()
	wantSize := int64(len(manifest) + len(config))
	for _, l := range layers {
		n, _ := l.Size()
		wantSize += n
	}
	if im.Size != wantSize {
		t.Errorf("Size = %d, want %d (manifest + config + compressed layers)", im.Size, wantSize)
	}
	hex := strings.TrimPrefix(id, "sha256:")
	for _, ref := range []string{id, ref1, wantDigest, hex[:12], "sha256:" + hex[:12], hex} {
		st, err := s.Status(ref)
		if err != nil || st.ID != id {
			t.Errorf("Status(%q) = %s, %v; want %s", ref, st.ID, err, id)
		}
	}
	for _, ref := range []string{"busybox", hex[:11], reg.host + "/test/other:v1"} {
		if _, err := s.Status(ref); !errdefs.IsNotFound(err) {
			t.Errorf("Status(%q) = %v, want not found", ref, err)
		}
	}
	lowers := s.LowerDirs(im)
	if len(lowers) != 3 || lowers[0] != s.snapshotDir(im.Layers[2].ChainID) {
		t.Errorf("LowerDirs = %q, want the top-most layer first", lowers)
	}
	for _, dir := range lowers {
		if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
			t.Errorf("layer dir %s: %d entries, %v; want the layer's one random file", dir, len(entries), err)
		}
	}
	u, err := s.FsInfo(context.Background())
	if err != nil || u.UsedBytes < 3*64<<10 || u.InodesUsed < 10 || u.Mountpoint != root {
		t.Errorf("FsInfo() = %+v, %v", u, err)
	}

	// A second tag of the same image: only the manifest (and the tiny config) are fetched.
	second, err := s.Pull(context.Background(), ref2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if n := reg.gets(mustDigest(t, l.Digest)); n != 1 {
			t.Errorf("layer downloaded again for a second tag (%d GETs)", n)
		}
	}
	if second.ID != id || !slices.Equal(second.RepoTags, []string{ref1, ref2}) {
		t.Errorf("after second tag: id %s tags %q", second.ID, second.RepoTags)
	}

	// In use: removal hides the image at once, the content stays until the last release.
	if _, err := s.Acquire(ref2, "ctr1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(id, "ctr2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ref2); err != nil {
		t.Fatal(err)
	}
	if l := s.List(); len(l) != 0 {
		t.Errorf("List() after Remove = %d images, want 0", len(l))
	}
	for _, ref := range []string{id, ref1, ref2} {
		if _, err := s.Status(ref); !errdefs.IsNotFound(err) {
			t.Errorf("Status(%q) after Remove = %v, want not found", ref, err)
		}
	}
	if err := s.Remove(id); !errdefs.IsNotFound(err) {
		t.Errorf("second Remove = %v, want not found", err)
	}
	for _, dir := range lowers {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("layer of an image in use was freed: %v", err)
		}
	}
	if err := s.Release(id, "ctr1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(id, "ctr1"); err != nil {
		t.Errorf("second Release of one user: %v", err)
	}
	if _, err := os.Stat(lowers[0]); err != nil {
		t.Errorf("freed while ctr2 still uses the image: %v", err)
	}
	if err := s.Release(id, "ctr2"); err != nil {
		t.Fatal(err)
	}
	if left := files(t, root); len(left) != 0 {
		t.Errorf("after the last release, files left: %q", left)
	}
}

func TestPullSharedLayers(t *testing.T) {
	reg := newTestRegistry(t)
	base := randomImage(t, 2)
	top1, _ := random.Layer(1000, types.DockerLayer)
	top2, _ := random.Layer(1000, types.DockerLayer)
	a, err := mutate.AppendLayers(base, top1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mutate.AppendLayers(base, top2)
	if err != nil {
		t.Fatal(err)
	}
	refA, refB := reg.push(t, "shared/a:1", a), reg.push(t, "shared/b:1", b)
	root := t.TempDir()
	s := newService(t, root, config.RegistryConfig{MaxConcurrentDownloads: 2})
	imgs := pullConcurrently(t, s, refA, refB, refA, refB)
	for _, l := range mustLayers(t, base) {
		if n := reg.gets(mustDigest(t, l.Digest)); n != 1 {
			t.Errorf("shared layer downloaded %d times, want once", n)
		}
	}
	if imgs[0].Layers[1].ChainID != imgs[1].Layers[1].ChainID {
		t.Fatalf("shared layers have different chain ids")
	}
	if err := s.Remove(refA); err != nil {
		t.Fatal(err)
	}
	shared := s.snapshotDir(imgs[1].Layers[1].ChainID)
	if _, err := os.Stat(shared); err != nil {
		t.Errorf("layer shared with a remaining image was freed: %v", err)
	}
	if _, err := os.Stat(s.snapshotDir(imgs[0].Layers[2].ChainID)); !os.IsNotExist(err) {
		t.Errorf("layer of the removed image only is still there (%v)", err)
	}
	if err := s.Remove(refB); err != nil {
		t.Fatal(err)
	}
	if left := files(t, root); len(left) != 0 {
		t.Errorf("files left after removing every image: %q", left)
	}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	reg := newTestRegistry(t)
	amd64, arm64 := randomImage(t, 1), randomImage(t, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref := reg.pushIndex(t, "multi/app:1", idx)
	s := newService(t, t.TempDir(), config.RegistryConfig{})
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustDigest(t, amd64.ConfigName).String(); img.ID != want {
		t.Errorf("pulled %s, want the linux/amd64 image %s", img.ID, want)
	}
	if want := reg.host + "/multi/app@" + mustDigest(t, idx.Digest).String(); !slices.Equal(img.RepoDigests, []string{want}) {
		t.Errorf("RepoDigests = %q, want the index digest %s", img.RepoDigests, want)
	}
	byDigest, err := s.Pull(context.Background(), img.RepoDigests[0], nil)
	if err != nil || byDigest.ID != img.ID || !slices.Equal(byDigest.RepoTags, []string{ref}) {
		t.Errorf("pull by digest: %+v, %v", byDigest, err)
	}
}

func TestPullHardLinkToLowerLayer(t *testing.T) {
	reg := newTestRegistry(t)
	l1 := tarLayer(t, tar.Header{Name: "a", Typeflag: tar.TypeReg})
	l2 := tarLayer(t, tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a"})
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.push(t, "links/app:1", img)
	s := newService(t, t.TempDir(), config.RegistryConfig{})
	got, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.snapshotDir(got.Layers[1].ChainID), "b"))
	if err != nil || string(b) != "a" {
		t.Errorf("hard link to a lower layer's file: %q, %v", b, err)
	}
}

func TestPullDigestMismatchLeavesNoFiles(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, 3)
	ref := reg.push(t, "bad/app:1", img)
	reg.set(reg.corrupt, mustDigest(t, mustLayers(t, img)[1].Digest))
	root := t.TempDir()
	s := newService(t, root, config.RegistryConfig{})
	_, err := s.Pull(context.Background(), ref, nil)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("Pull of a corrupt layer = %v, want a digest mismatch", err)
	}
	if left := files(t, root); len(left) != 0 {
		t.Errorf("failed pull left files: %q", left)
	}
	if l := s.List(); len(l) != 0 {
		t.Errorf("failed pull left an image: %+v", l)
	}
}

func TestPullErrors(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "test/app:1", randomImage(t, 1))
	s := newService(t, t.TempDir(), config.RegistryConfig{})
	ctx := context.Background()

	missing := reg.host + "/test/missing:1"
	_, err := s.Pull(ctx, missing, nil)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), missing+" not found") {
		t.Errorf("pull of a missing image = %v, want not found naming %s", err, missing)
	}
	if _, err := s.Pull(ctx, "Bad//ref", nil); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "Bad//ref") {
		t.Errorf("malformed reference = %v, want invalid argument naming it", err)
	}

	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := s.Pull(tctx, ref, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pull with 1ms deadline = %v, want deadline exceeded", err)
	}

	reg.mu.Lock()
	reg.user, reg.pass = "alice", "secret"
	reg.mu.Unlock()
	_, err = s.Pull(ctx, ref, nil)
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "authentication failed for "+reg.host) {
		t.Errorf("pull without credentials = %v, want authentication failed for %s", err, reg.host)
	}
	if _, err := s.Pull(ctx, ref, &Auth{Username: "alice", Password: "wrong"}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("pull with a wrong password = %v, want unauthenticated", err)
	}
	if _, err := s.Pull(ctx, ref, &Auth{Username: "alice", Password: "secret"}); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}
}

func TestPullNoProgressTimeout(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, 2)
	ref := reg.push(t, "slow/app:1", img)
	reg.set(reg.stall, mustDigest(t, mustLayers(t, img)[0].Digest))
	root := t.TempDir()
	s := newService(t, root, config.RegistryConfig{PullProgressTimeout: config.Duration{Duration: 300 * time.Millisecond}})
	start := time.Now()
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "no progress") {
		t.Errorf("stalled pull = %v, want unavailable: no progress", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) { // a timeout for metrics (cri.pullReason)
		t.Errorf("stalled pull = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stalled pull took %s", d)
	}
	if left := files(t, root); len(left) != 0 {
		t.Errorf("stalled pull left files: %q", left)
	}
}

func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestPullMirrors(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "test/app:1", randomImage(t, 1))
	dead := "http://" + deadAddress(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		hosts map[string]config.RegistryHost
		ref   string
		err   error
	}{
		"dead mirror, then the live one; the upstream host is never contacted": {
			hosts: map[string]config.RegistryHost{"registry.invalid": {
				Mirrors: []string{dead, reg.srv.URL}, MirrorsOnly: true}},
			ref: "registry.invalid/test/app:1",
		},
		"mirrors_only with every mirror down fails closed": {
			hosts: map[string]config.RegistryHost{"registry.invalid": {Mirrors: []string{dead}, MirrorsOnly: true}},
			ref:   "registry.invalid/test/app:1",
			err:   errdefs.ErrUnavailable,
		},
		"dead mirror falls back to the upstream host": {
			hosts: map[string]config.RegistryHost{reg.host: {Mirrors: []string{dead}}},
			ref:   reg.host + "/test/app:1",
		},
		"a mirror without the image answers 404, the next mirror has it": {
			hosts: map[string]config.RegistryHost{"registry.invalid": {
				Mirrors: []string{newTestRegistry(t).srv.URL, reg.srv.URL}, MirrorsOnly: true}},
			ref: "registry.invalid/test/app:1",
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newService(t, t.TempDir(), config.RegistryConfig{Hosts: tc.hosts})
			img, err := s.Pull(ctx, tc.ref, nil)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Pull = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(img.RepoTags, []string{tc.ref}) {
				t.Errorf("RepoTags = %q, want the requested name %s", img.RepoTags, tc.ref)
			}
		})
	}
}

func TestNewSweeps(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "test/app:1", randomImage(t, 2))
	other := reg.push(t, "test/other:1", randomImage(t, 1))
	root := t.TempDir()
	s := newService(t, root, config.RegistryConfig{})
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An image removed while in use survives a restart hidden, and is freed by its last release.
	used, err := s.Pull(context.Background(), other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(other, "ctr"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(other); err != nil {
		t.Fatal(err)
	}
	keep := files(t, root)
	for _, p := range []string{
		"content/ingest/partial", "content/blobs/sha256/" + strings.Repeat("ab", 32), "content/blobs/sha256/junk",
		"snapshots/tmp-123/f", "snapshots/trash-456/f", "snapshots/" + strings.Repeat("cd", 32) + "/f",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = newService(t, root, config.RegistryConfig{})
	if got := files(t, root); !slices.Equal(got, keep) {
		t.Errorf("after restart\n got  %q\n want %q", got, keep)
	}
	if st, err := s.Status(ref); err != nil || st.ID != img.ID {
		t.Errorf("Status after restart = %v, %v", st.ID, err)
	}
	if _, err := s.Status(used.ID); !errdefs.IsNotFound(err) {
		t.Errorf("removed image visible after restart: %v", err)
	}
	if err := s.Release(used.ID, "ctr"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.snapshotDir(used.Layers[0].ChainID)); !os.IsNotExist(err) {
		t.Errorf("last release after restart did not free the layer: %v", err)
	}
}

func TestPinned(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "pinned/app:1", randomImage(t, 1))
	other := reg.push(t, "other/app:1", randomImage(t, 1))
	s, err := New(context.Background(), Options{RootDir: t.TempDir(), Pinned: []string{ref}, Logger: testLogger(t),
		Registry: config.RegistryConfig{MaxConcurrentDownloads: 1, PullProgressTimeout: config.Duration{Duration: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	for r, want := range map[string]bool{ref: true, other: false} {
		img, err := s.Pull(context.Background(), r, nil)
		if err != nil || img.Pinned != want {
			t.Errorf("Pull(%s).Pinned = %v, %v; want %v", r, img.Pinned, err, want)
		}
	}
}

// TestRemovePinned: pinned images (pinned_images and the sandbox image) cannot be removed, by any of their names.
func TestRemovePinned(t *testing.T) {
	reg := newTestRegistry(t)
	pinnedRef := reg.push(t, "pinned/app:1", randomImage(t, 1))
	sandboxRef := reg.push(t, "pause/app:3", randomImage(t, 1))
	otherRef := reg.push(t, "other/app:1", randomImage(t, 1))
	s, err := New(context.Background(), Options{RootDir: t.TempDir(), Pinned: []string{pinnedRef, sandboxRef}, Logger: testLogger(t),
		Registry: config.RegistryConfig{MaxConcurrentDownloads: 1, PullProgressTimeout: config.Duration{Duration: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string]Image{}
	for _, r := range []string{pinnedRef, sandboxRef, otherRef} {
		if imgs[r], err = s.Pull(context.Background(), r, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []string{pinnedRef, sandboxRef} {
		img := imgs[r]
		for _, name := range []string{r, img.ID, img.RepoDigests[0], strings.TrimPrefix(img.ID, "sha256:")[:12]} {
			err := s.Remove(name)
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "pinned") ||
				!strings.Contains(err.Error(), r) {
				t.Errorf("Remove(%s) = %v, want failed precondition: %s is pinned", name, err, r)
			}
		}
		if _, err := s.Status(img.ID); err != nil {
			t.Errorf("pinned image %s gone: %v", r, err)
		}
	}
	if err := s.Remove(otherRef); err != nil {
		t.Errorf("Remove of an image that is not pinned: %v", err)
	}
}

// TestKeepUsers: at start-up berthd drops the users that no container record knows (a create killed between Acquire
// and writing its record): a removed image left without users is freed, one with known users stays.
func TestKeepUsers(t *testing.T) {
	reg := newTestRegistry(t)
	lost := reg.push(t, "test/lost:1", randomImage(t, 1))
	kept := reg.push(t, "test/kept:1", randomImage(t, 1))
	s := newService(t, t.TempDir(), config.RegistryConfig{})
	var imgs []Image
	for _, ref := range []string{lost, kept} {
		img, err := s.Pull(context.Background(), ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	for _, u := range []struct{ ref, user string }{{lost, "gone"}, {kept, "gone"}, {kept, "ctr"}} {
		if _, err := s.Acquire(u.ref, u.user); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range []string{lost, kept} {
		if err := s.Remove(ref); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := s.KeepUsers(func(user string) bool { return user == "ctr" })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gone", "gone"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
	if _, err := os.Stat(s.snapshotDir(imgs[0].Layers[0].ChainID)); !os.IsNotExist(err) {
		t.Errorf("a removed image whose only user was dropped is not freed: %v", err)
	}
	if _, err := os.Stat(s.snapshotDir(imgs[1].Layers[0].ChainID)); err != nil {
		t.Errorf("a removed image a known container uses was freed: %v", err)
	}
	if err := s.Release(imgs[1].ID, "ctr"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.snapshotDir(imgs[1].Layers[0].ChainID)); !os.IsNotExist(err) {
		t.Errorf("the last release did not free the image: %v", err)
	}
}

// OnPull hears of every pull: the compressed bytes it fetched (none for content already stored) and its error.
func TestPullObserved(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, 2)
	ref := reg.push(t, "obs/app:1", img)
	var size int64
	for _, l := range mustLayers(t, img) {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		size += n
	}
	s := newService(t, t.TempDir(), config.RegistryConfig{})
	type seen struct {
		fetched int64
		err     error
	}
	var got []seen
	s.onPull = func(took time.Duration, fetched int64, err error) {
		if took <= 0 {
			t.Errorf("pull took %v", took)
		}
		got = append(got, seen{fetched, err})
	}
	ctx := context.Background()
	for range 2 {
		if _, err := s.Pull(ctx, ref, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, missing := s.Pull(ctx, reg.host+"/obs/app:nope", nil)
	if len(got) != 3 {
		t.Fatalf("observed %d pulls, want 3", len(got))
	}
	if got[0].fetched != size || got[0].err != nil {
		t.Errorf("first pull observed %+v, want %d bytes fetched", got[0], size)
	}
	if got[1].fetched != 0 || got[1].err != nil {
		t.Errorf("second pull observed %+v, want nothing fetched", got[1])
	}
	if !errdefs.IsNotFound(got[2].err) || got[2].err.Error() != missing.Error() {
		t.Errorf("failed pull observed %+v, want the error it returned (%v)", got[2], missing)
	}
}
