package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/image/archive"
	"github.com/berthcri/berth/image/registry"
	"github.com/berthcri/berth/internal/errdefs"
)

// ensureLayer makes sure layers[i] has its snapshot dir; done[j] is closed once layer j has.
//
// Locks are taken in one order, chain id then blob, and the blob lock is never held while waiting for lower
// layers, so concurrent pulls (and one image listing the same blob twice) cannot deadlock. A layer unpacks
// without its lowers unless it hard-links a file of a lower layer (archive.ErrLowerNeeded); then it is unpacked
// again from the stored blob once the lower layers of this image are complete.
func (p *pull) ensureLayer(ctx context.Context, layers []Layer, i int, done []chan struct{}) error {
	l := layers[i]
	unlockSnap, err := p.s.locks.LockOwned(ctx, "snapshot "+l.ChainID.String(), p, p.prog.waitForOther)
	if err != nil {
		return err
	}
	defer unlockSnap()
	if ok, err := p.s.hasSnapshot(l.ChainID); ok || err != nil {
		return err
	}
	unlockBlob, err := p.s.locks.LockOwned(ctx, "blob "+l.Digest.String(), p, p.prog.waitForOther)
	if err != nil {
		return err
	}
	downloaded := !p.s.content.Has(l.Digest)
	if downloaded {
		err = p.download(ctx, l)
	}
	unlockBlob()
	if !downloaded {
		err = p.unpackBlob(ctx, l, nil)
	}
	if !errors.Is(err, archive.ErrLowerNeeded) {
		return err
	}
	lowers := make([]string, 0, i)
	for j := i - 1; j >= 0; j-- {
		select {
		case <-done[j]:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		lowers = append(lowers, p.s.snapshotDir(layers[j].ChainID))
	}
	return p.unpackBlob(ctx, l, lowers)
}

// download fetches layer l into the content store and unpacks it while the bytes arrive: the stream is teed
// into the blob writer (which verifies size and digest) and into decompression and unpacking. The snapshot is
// committed only after the blob verified. It returns archive.ErrLowerNeeded (with the blob committed) when the
// layer needs its lower layers to unpack.
func (p *pull) download(ctx context.Context, l Layer) error {
	s := p.s
	select {
	case p.downloads <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-p.downloads }()

	body, err := p.img.Fetch(ctx, registry.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer body.Close()
	w, err := s.content.Writer(l.Digest, l.Size)
	if err != nil {
		return err
	}
	defer w.Discard()
	src := io.TeeReader(p.prog.reader(body, &p.prog.downloaded), w)
	tmp, unpackErr := p.unpack(ctx, l, src, nil)
	if errors.Is(unpackErr, errdefs.ErrResourceExhausted) {
		return unpackErr // a bomb: the rest of it is not worth downloading
	}
	// Verify the blob whatever else the unpack said: a digest mismatch is the better explanation of a broken layer.
	_, blobErr := io.Copy(io.Discard, src)
	if blobErr == nil {
		blobErr = w.Commit()
	}
	if blobErr != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return fmt.Errorf("download layer %s: %w", l.Digest, blobErr)
	}
	if unpackErr != nil {
		return unpackErr
	}
	return s.commitSnapshot(tmp, l.ChainID)
}

// unpackBlob unpacks layer l from its stored blob.
func (p *pull) unpackBlob(ctx context.Context, l Layer, lowers []string) error {
	f, err := p.s.content.Open(l.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp, err := p.unpack(ctx, l, f, lowers)
	if err != nil {
		return err
	}
	return p.s.commitSnapshot(tmp, l.ChainID)
}

// unpack decompresses r and unpacks it into a new temp dir under snapshots/, verifying the uncompressed digest
// against the config's diff id. It returns the temp dir, or removes it on error.
func (p *pull) unpack(ctx context.Context, l Layer, r io.Reader, lowers []string) (dir string, err error) {
	tmp, err := os.MkdirTemp(p.s.snapshots, "tmp-")
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	// The top-most layer dir's mode becomes that of the container's root unless the layer sets "./" itself.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	dr, err := archive.Decompress(r)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer dr.Close()
	h := l.DiffID.Algorithm().Hash()
	_, err = archive.Apply(ctx, tmp, io.TeeReader(p.prog.reader(dr, &p.prog.unpacked), h),
		archive.Options{Lowers: lowers, Limit: p.limit})
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if got := digest.NewDigest(l.DiffID.Algorithm(), h); got != l.DiffID {
		return "", errdefs.FailedPrecondition("layer %s: uncompressed content has digest %s, the image config says %s",
			l.Digest, got, l.DiffID)
	}
	return tmp, nil
}

// commitSnapshot makes an unpacked temp dir the snapshot of chainID.
func (s *Service) commitSnapshot(tmp string, chainID digest.Digest) error {
	if err := os.Rename(tmp, s.snapshotDir(chainID)); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	return nil
}
