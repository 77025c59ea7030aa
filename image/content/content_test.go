package content

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestWriter(t *testing.T) {
	data := []byte("hello, blob")
	good := digest.FromBytes(data)
	for name, tc := range map[string]struct {
		d    digest.Digest
		size int64
		data []byte
		err  error
	}{
		"verified":         {d: good, size: int64(len(data)), data: data},
		"wrong digest":     {d: digest.FromString("other"), size: int64(len(data)), data: data, err: errdefs.ErrFailedPrecondition},
		"short":            {d: good, size: int64(len(data)) + 1, data: data, err: errdefs.ErrFailedPrecondition},
		"longer than size": {d: good, size: 3, data: data, err: errdefs.ErrFailedPrecondition},
		"malformed digest": {d: "sha256:../../etc", size: 1, data: data, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			s, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			err = write(s, tc.d, tc.size, tc.data)
			if !errors.Is(err, tc.err) {
				t.Fatalf("write = %v, want %v", err, tc.err)
			}
			if ingest, _ := os.ReadDir(filepath.Join(root, "ingest")); len(ingest) != 0 {
				t.Errorf("ingest not empty after Put: %v", ingest)
			}
			if tc.err != nil {
				if tc.d.Validate() == nil && s.Has(tc.d) {
					t.Errorf("unverified blob %s became visible", tc.d)
				}
				return
			}
			got, err := os.ReadFile(s.Path(tc.d))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("blob = %q, %v", got, err)
			}
		})
	}
}

// write stores data as blob d announced with size, the way a download does.
func write(s *Store, d digest.Digest, size int64, data []byte) error {
	w, err := s.Writer(d, size)
	if err != nil {
		return err
	}
	defer w.Discard()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit()
}

func TestSweep(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	keep, drop := []byte("keep"), []byte("drop")
	for _, b := range [][]byte{keep, drop} {
		if err := s.Put(digest.FromBytes(b), b); err != nil {
			t.Fatal(err)
		}
	}
	w, err := s.Writer(digest.FromString("partial"), 100)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("part"))
	if err := os.WriteFile(filepath.Join(root, "blobs", "sha256", "not-a-digest"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(func(d digest.Digest) bool { return d == digest.FromBytes(keep) })
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 blobs removed", n, err)
	}
	if !s.Has(digest.FromBytes(keep)) || s.Has(digest.FromBytes(drop)) {
		t.Error("Sweep kept the wrong blobs")
	}
	if ingest, _ := os.ReadDir(filepath.Join(root, "ingest")); len(ingest) != 0 {
		t.Errorf("partial download survived Sweep: %v", ingest)
	}
}
