// Package content stores blobs by digest. A blob becomes visible under blobs/<alg>/<hex> only after its size
// and digest were verified while it was written under ingest/; a partial download is never visible.
//
// Durability: blobs are not fsynced one by one. The image service syncs the filesystem once per pull before it
// writes the image record that references them, and sweeps unreferenced blobs at start-up.
package content

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
)

// Store is a directory of blobs. It is safe for concurrent use; callers serialise writers of one digest.
type Store struct {
	root string
}

// Open creates the store's directories under root.
func Open(root string) (*Store, error) {
	for _, d := range []string{filepath.Join(root, "blobs"), filepath.Join(root, "ingest")} {
		if err := privdir.Make(d, privdir.Private); err != nil {
			return nil, fmt.Errorf("open content store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Path is where blob d lives once committed.
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// Has reports whether blob d is committed.
func (s *Store) Has(d digest.Digest) bool {
	_, err := os.Lstat(s.Path(d))
	return err == nil
}

// Open opens committed blob d for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	f, err := os.Open(s.Path(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("blob", d.String())
	}
	return f, err
}

// Put stores data as blob d, verifying it.
func (s *Store) Put(d digest.Digest, data []byte) error {
	w, err := s.Writer(d, int64(len(data)))
	if err != nil {
		return err
	}
	defer w.Discard()
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		return err
	}
	return w.Commit()
}

// Delete removes blob d; removing an absent blob is not an error.
func (s *Store) Delete(d digest.Digest) error {
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Sweep removes every partial download and every blob keep does not want, including files whose names are not
// digests. Only safe while no writer is open (at start-up). It returns how many blobs it removed.
func (s *Store) Sweep(keep func(digest.Digest) bool) (int, error) {
	ingest := filepath.Join(s.root, "ingest")
	if err := os.RemoveAll(ingest); err != nil {
		return 0, fmt.Errorf("sweep ingest: %w", err)
	}
	if err := os.MkdirAll(ingest, 0o700); err != nil {
		return 0, fmt.Errorf("sweep ingest: %w", err)
	}
	blobs := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return 0, fmt.Errorf("sweep blobs: %w", err)
	}
	removed := 0
	for _, a := range algs {
		files, err := os.ReadDir(filepath.Join(blobs, a.Name()))
		if err != nil {
			return removed, fmt.Errorf("sweep blobs: %w", err)
		}
		for _, f := range files {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), f.Name())
			if d.Validate() == nil && keep(d) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(blobs, a.Name(), f.Name())); err != nil {
				return removed, fmt.Errorf("sweep blobs: %w", err)
			}
			removed++
		}
	}
	return removed, nil
}

// Writer receives one blob. Write it fully, then Commit; always Discard (a no-op after a Commit).
type Writer struct {
	s      *Store
	want   digest.Digest
	size   int64
	f      *os.File
	h      hash.Hash
	n      int64
	closed bool
}

// Writer starts writing blob d of the given size into the ingest dir.
func (s *Store) Writer(d digest.Digest, size int64) (*Writer, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "ingest"), d.Encoded()+"-*")
	if err != nil {
		return nil, fmt.Errorf("write blob %s: %w", d, err)
	}
	return &Writer{s: s, want: d, size: size, f: f, h: d.Algorithm().Hash()}, nil
}

// Write appends p, failing as soon as the blob grows past its announced size.
func (w *Writer) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.size {
		return 0, errdefs.FailedPrecondition("blob %s: more than the announced %d bytes", w.want, w.size)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write blob %s: %w", w.want, err)
	}
	return n, nil
}

// Commit verifies size and digest and makes the blob visible. A blob already present is left as it is.
func (w *Writer) Commit() error {
	if w.n != w.size {
		return errdefs.FailedPrecondition("blob %s: got %d bytes, want %d", w.want, w.n, w.size)
	}
	if got := digest.NewDigest(w.want.Algorithm(), w.h); got != w.want {
		return errdefs.FailedPrecondition("blob %s: content has digest %s", w.want, got)
	}
	w.closed = true
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("write blob %s: %w", w.want, err)
	}
	dst := w.s.Path(w.want)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("commit blob %s: %w", w.want, err)
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("commit blob %s: %w", w.want, err)
	}
	return nil
}

// Discard drops an uncommitted blob.
func (w *Writer) Discard() {
	if w.closed {
		return
	}
	w.closed = true
	w.f.Close()
	os.Remove(w.f.Name())
}
