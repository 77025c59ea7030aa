package image

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berthcri/berth/image/archive"
	"github.com/berthcri/berth/image/registry"
	"github.com/berthcri/berth/internal/errdefs"
)

// maxLayers is what overlayfs can stack (OVL_MAX_STACK, fs/overlayfs/params.h): an image of more layers could be
// pulled but never mounted, so the pull refuses it before fetching anything but its manifest.
const maxLayers = 500

// pull is one Pull in flight.
type pull struct {
	s         *Service
	ref       reference.Named
	img       *registry.Image
	prog      progress
	downloads chan struct{}  // one token per layer download in flight
	limit     *archive.Limit // what the pull's layers may unpack together
}

// Pull fetches ref (normalised, e.g. "busybox" → docker.io/library/busybox:latest) for this node's platform
// and tags it. Content already present is not fetched again, so pulling a second tag of a stored image only
// adds the tag. Layers are downloaded in parallel (max_concurrent_downloads at once per pull) and
// unpacked while their bytes arrive, together at most registry.max_unpacked_size (the layers this pull unpacks;
// layers already stored are not counted again). A failed pull leaves no new files behind.
func (s *Service) Pull(ctx context.Context, ref string, auth *Auth) (_ Image, err error) {
	named, err := parseRef(ref)
	if err != nil {
		return Image{}, err
	}
	start := time.Now()
	s.pulls.Add(1)
	defer s.pullDone()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &pull{s: s, ref: named, downloads: make(chan struct{}, s.downloads),
		limit: archive.NewLimit(int64(s.unpacked), fmt.Sprintf("registry.max_unpacked_size (%s)", s.unpacked))}
	stop := p.prog.watch(ctx, s.timeout, func() {
		// Unavailable for the kubelet (it retries), a deadline for whoever tells timeouts apart (metrics).
		cancel(fmt.Errorf("no progress for %s (registry.pull_progress_timeout): %w (%w)", s.timeout,
			errdefs.ErrUnavailable, context.DeadlineExceeded))
	})
	defer stop()

	r, err := p.run(ctx, auth)
	if s.onPull != nil {
		defer func() { s.onPull(time.Since(start), p.prog.downloaded.Load(), err) }()
	}
	if err != nil {
		if ctx.Err() != nil {
			// The pull's own deadline or the watchdog ended it; say which rather than how a read noticed.
			err = context.Cause(ctx)
		}
		return Image{}, fmt.Errorf("pull %s: %w", named, err)
	}
	elapsed := time.Since(start)
	down := p.prog.downloaded.Load()
	s.log.InfoContext(ctx, "pulled image", "ref", named.String(), "id", r.ID, "size", r.Size, "downloaded", down,
		"unpacked", p.prog.unpacked.Load(), "duration", elapsed.Round(time.Millisecond),
		"rateMBps", fmt.Sprintf("%.1f", float64(down)/1e6/elapsed.Seconds()), "host", p.img.Endpoint.Host)
	return s.toImage(r), nil
}

func (p *pull) run(ctx context.Context, auth *Auth) (record, error) {
	s := p.s
	img, err := s.registry.Load().Resolve(ctx, p.ref, auth)
	if err != nil {
		return record{}, err
	}
	p.img = img
	fresh, err := newRecord(img)
	if err != nil {
		return record{}, err
	}
	held := fresh.refs()
	s.hold(held)
	ok := false
	defer func() { s.unhold(held, !ok) }()

	for _, m := range img.Manifests {
		if err := s.putBlob(m.Digest, m.Data); err != nil {
			return record{}, err
		}
	}
	if err := s.putBlob(img.Config.Digest, img.RawConfig); err != nil {
		return record{}, err
	}
	if err := p.fetchLayers(ctx, fresh.Layers); err != nil {
		return record{}, err
	}
	// One syncfs makes every blob, layer and rename of this pull durable before the record that names them.
	if err := archive.Sync(s.snapshots); err != nil {
		return record{}, err
	}
	r, err := s.commit(p.ref, img.Digest, fresh)
	if err != nil {
		return record{}, err
	}
	ok = true
	return r, nil
}

// newRecord builds the record of a resolved image, checking that its config matches its manifest.
func newRecord(img *registry.Image) (record, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(img.RawConfig, &cfg); err != nil {
		return record{}, errdefs.FailedPrecondition("image config %s: %v", img.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(img.Layers) {
		return record{}, errdefs.FailedPrecondition("image config %s lists %d layers, the manifest %d",
			img.Config.Digest, len(cfg.RootFS.DiffIDs), len(img.Layers))
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return record{}, errdefs.FailedPrecondition("image config %s: diff id %q: %v", img.Config.Digest, d, err)
		}
	}
	chains := chainIDs(cfg.RootFS.DiffIDs)
	size := img.Config.Size + int64(len(img.Manifests[len(img.Manifests)-1].Data))
	layers := make([]Layer, len(img.Layers))
	for i, l := range img.Layers {
		layers[i] = Layer{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType, DiffID: cfg.RootFS.DiffIDs[i],
			ChainID: chains[i]}
		size += l.Size
	}
	manifests := make([]digest.Digest, len(img.Manifests))
	for i, m := range img.Manifests {
		manifests[i] = m.Digest
	}
	return record{
		ID:        img.Config.Digest.String(),
		Manifests: manifests,
		Layers:    layers,
		Config:    cfg,
		Size:      size,
	}, nil
}

func (s *Service) putBlob(d digest.Digest, data []byte) error {
	if s.content.Has(d) {
		return nil
	}
	return s.content.Put(d, data)
}

// fetchLayers makes sure every layer has its snapshot, in parallel.
func (p *pull) fetchLayers(ctx context.Context, layers []Layer) error {
	done := make([]chan struct{}, len(layers))
	for i := range done {
		done[i] = make(chan struct{})
	}
	g, ctx := errgroup.WithContext(ctx)
	for i := range layers {
		g.Go(func() error {
			if err := p.ensureLayer(ctx, layers, i, done); err != nil {
				return err
			}
			close(done[i])
			return nil
		})
	}
	return g.Wait()
}

// commit records the pulled image under its id and tags it with ref, taking the tag from any other image
// that had it (a tag names one image). An image removed while in use comes back with just this reference.
func (s *Service) commit(ref reference.Named, top digest.Digest, fresh record) (record, error) {
	tag := ""
	if _, digested := ref.(reference.Digested); !digested {
		tag = ref.String()
	}
	repoDigest := ref.Name() + "@" + top.String()

	s.mu.Lock()
	defer s.mu.Unlock()
	if tag != "" {
		for _, r := range s.records.List() {
			if r.ID == fresh.ID || !slices.Contains(r.RepoTags, tag) {
				continue
			}
			if _, err := s.records.Update(r.ID, func(r *record) error {
				r.RepoTags = slices.DeleteFunc(r.RepoTags, func(t string) bool { return t == tag })
				return nil
			}); err != nil {
				return record{}, fmt.Errorf("move tag %s: %w", tag, err)
			}
		}
	}
	if _, ok := s.records.Get(fresh.ID); !ok {
		fresh.RepoTags = addUnique(nil, tag)
		fresh.RepoDigests = []string{repoDigest}
		if err := s.records.Create(fresh.ID, fresh); err != nil {
			return record{}, fmt.Errorf("record image %s: %w", fresh.ID, err)
		}
		return fresh, nil
	}
	r, err := s.records.Update(fresh.ID, func(r *record) error {
		if r.Removed {
			r.Removed, r.RepoTags, r.RepoDigests = false, nil, nil
		}
		r.RepoTags = addUnique(r.RepoTags, tag)
		r.RepoDigests = addUnique(r.RepoDigests, repoDigest)
		for _, m := range fresh.Manifests {
			r.Manifests = addUnique(r.Manifests, m)
		}
		return nil
	})
	if err != nil {
		return record{}, fmt.Errorf("record image %s: %w", fresh.ID, err)
	}
	return r, nil
}

// pullDone ends a pull. When no other pull is in flight it returns the memory pulls used (decompressor windows,
// copy buffers, registry responses: megabytes an idle daemon would otherwise hold until the runtime's periodic
// GC and scavenger got to it) to the OS at once; a GC of the small idle heap costs about a millisecond.
func (s *Service) pullDone() {
	if s.pulls.Add(-1) == 0 {
		debug.FreeOSMemory()
	}
}
