// Package image pulls images from registries and keeps them on disk: a content store of blobs by digest
// (<root>/content), one unpacked directory per layer chain id used as an overlayfs lower dir
// (<root>/snapshots/<chain-id-hex>), and one record per image (<root>/images).
//
// Recovery assumptions, checked by New: a record is written only after everything it references is on disk and
// synced; anything on disk that no record references is a leftover of a pull or removal that did not finish,
// and is deleted. Images removed while in use keep their record (marked removed) until their last user is
// released, so that a crash never frees a layer a container still mounts.
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/image/archive"
	"github.com/berthcri/berth/image/content"
	"github.com/berthcri/berth/image/registry"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/keylock"
	"github.com/berthcri/berth/internal/privdir"
	"github.com/berthcri/berth/internal/store"
)

// Auth is the credential a client sends with a pull (the CRI AuthConfig).
type Auth = registry.Auth

// ErrTooBig is wrapped by a pull whose layers unpack to more than registry.max_unpacked_size.
var ErrTooBig = archive.ErrTooBig

// Options configure the image service.
type Options struct {
	// RootDir holds content/, snapshots/ and images/, e.g. /var/lib/berth.
	RootDir  string
	Registry config.RegistryConfig
	// Pinned are references (or ids) of images that report pinned=true: the config's pinned_images and the
	// sandbox image.
	Pinned []string
	Logger *slog.Logger
	// OnPull is told of the end of every pull: its duration, the compressed bytes it fetched from the registry and
	// its error (metrics); nil for none.
	OnPull func(took time.Duration, fetched int64, err error)
	// SyncWritableLayers mounts containers' writable layers without overlayfs's volatile option (config
	// sync_writable_layers): each unmount then syncs the whole filesystem under root_dir.
	SyncWritableLayers bool
}

// Service is the image store. It is safe for concurrent use.
type Service struct {
	root      string
	snapshots string
	log       *slog.Logger
	// registry and pinned are replaced whole by Reload; a pull loads registry once, so it keeps the config it
	// started with.
	registry  atomic.Pointer[registry.Client]
	content   *content.Store
	records   *store.Store[record]
	pinned    atomic.Pointer[map[string]bool]
	timeout   time.Duration // no-progress timeout of a pull
	downloads int           // layer downloads in flight per pull
	unpacked  config.Size   // what one pull may unpack (registry.max_unpacked_size)
	locks     keylock.Map   // one download per blob, one unpack per chain id
	// syncLayers is Options.SyncWritableLayers.
	syncLayers bool

	// mu serialises record changes and the freeing of content, which is decided from the records plus the
	// content held by pulls in flight.
	mu        sync.Mutex
	heldBlobs map[digest.Digest]int
	heldSnaps map[digest.Digest]int
	trashSeq  atomic.Int64 // names snapshot dirs on their way out
	pulls     atomic.Int64 // pulls in flight: the last to end returns the pulls' buffers to the OS
	onPull    func(took time.Duration, fetched int64, err error)
}

// New opens the image store under o.RootDir and sweeps what interrupted pulls and removals left behind.
func New(ctx context.Context, o Options) (*Service, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cs, err := content.Open(filepath.Join(o.RootDir, "content"))
	if err != nil {
		return nil, err
	}
	snapshots := filepath.Join(o.RootDir, "snapshots")
	if err := privdir.Make(snapshots, privdir.Private); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	records, err := store.Open[record](filepath.Join(o.RootDir, "images"), "image", recordVersion)
	if err != nil {
		return nil, err
	}
	pinned, err := pinnedSet(o.Pinned)
	if err != nil {
		return nil, err
	}
	timeout := o.Registry.PullProgressTimeout.Duration
	if timeout <= 0 {
		timeout = config.Default().Registry.PullProgressTimeout.Duration
	}
	unpacked := o.Registry.MaxUnpackedSize
	if unpacked <= 0 {
		unpacked = config.Default().Registry.MaxUnpackedSize
	}
	reg, err := registry.Load(o.Registry, log)
	if err != nil {
		return nil, err
	}
	reg.MaxLayers = maxLayers
	s := &Service{
		root:       o.RootDir,
		snapshots:  snapshots,
		log:        log,
		content:    cs,
		records:    records,
		timeout:    timeout,
		downloads:  max(o.Registry.MaxConcurrentDownloads, 1),
		syncLayers: o.SyncWritableLayers,
		unpacked:   unpacked,
		heldBlobs:  map[digest.Digest]int{},
		heldSnaps:  map[digest.Digest]int{},
		onPull:     o.OnPull,
	}
	s.registry.Store(reg)
	s.pinned.Store(&pinned)
	if err := s.sweep(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func pinnedSet(refs []string) (map[string]bool, error) {
	pinned := map[string]bool{}
	for _, p := range refs {
		if d, err := digest.Parse(p); err == nil {
			pinned[d.String()] = true
			continue
		}
		named, err := parseRef(p)
		if err != nil {
			return nil, fmt.Errorf("pinned image: %w", err)
		}
		pinned[named.String()] = true
	}
	return pinned, nil
}

// Reload replaces the registry configuration (hosts, certs.d, credentials) and the pinned images, after checking
// all of it: on an error nothing changes. Pulls in flight finish with the configuration they started with.
func (s *Service) Reload(reg config.RegistryConfig, pinned []string) error {
	p, err := pinnedSet(pinned)
	if err != nil {
		return err
	}
	c, err := registry.Load(reg, s.log)
	if err != nil {
		return err
	}
	old := s.registry.Load()
	c.MaxLayers, c.Dial = old.MaxLayers, old.Dial
	s.registry.Store(c)
	s.pinned.Store(&p)
	old.Close()
	return nil
}

// Registry is the registry client pulls use now.
func (s *Service) Registry() *registry.Client { return s.registry.Load() }

// sweep deletes records of removed images nobody uses, partial downloads, unpack temp dirs, and blobs and
// snapshots no record references.
func (s *Service) sweep(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records.List() {
		if r.Removed && len(r.Users) == 0 {
			if err := s.records.Delete(r.ID); err != nil {
				return fmt.Errorf("sweep image store: %w", err)
			}
		}
	}
	blobs, snaps := s.inUse()
	nblobs, err := s.content.Sweep(func(d digest.Digest) bool { return blobs[d] })
	if err != nil {
		return fmt.Errorf("sweep image store: %w", err)
	}
	entries, err := os.ReadDir(s.snapshots)
	if err != nil {
		return fmt.Errorf("sweep image store: %w", err)
	}
	keep := map[string]bool{}
	for d := range snaps {
		keep[filepath.Base(s.snapshotDir(d))] = true
	}
	nsnaps := 0
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.snapshots, e.Name())); err != nil {
			return fmt.Errorf("sweep image store: %w", err)
		}
		nsnaps++
	}
	if nblobs+nsnaps > 0 {
		s.log.InfoContext(ctx, "swept unreferenced image content", "blobs", nblobs, "snapshots", nsnaps)
	}
	return nil
}

// inUse returns the blobs and snapshots that records or pulls in flight reference. Callers hold mu.
func (s *Service) inUse() (blobs, snaps map[digest.Digest]bool) {
	blobs, snaps = map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for d := range s.heldBlobs {
		blobs[d] = true
	}
	for d := range s.heldSnaps {
		snaps[d] = true
	}
	for _, r := range s.records.List() {
		rs := r.refs()
		for _, d := range rs.blobs {
			blobs[d] = true
		}
		for _, d := range rs.snaps {
			snaps[d] = true
		}
	}
	return blobs, snaps
}

// snapshotDir is the unpacked layer dir of a chain id.
func (s *Service) snapshotDir(chainID digest.Digest) string {
	return filepath.Join(s.snapshots, chainID.Encoded())
}

func (s *Service) hasSnapshot(chainID digest.Digest) (bool, error) {
	_, err := os.Lstat(s.snapshotDir(chainID))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// LowerDirs returns img's layer dirs in overlayfs lowerdir order: top-most first.
func (s *Service) LowerDirs(img Image) []string {
	out := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		out[len(out)-1-i] = s.snapshotDir(l.ChainID)
	}
	return out
}
