package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthcri/berth/internal/atomicfile"
)

// indexFile, in the blob dir, lists every manifest pushed (repository, tag or digest, media type, digest) in push
// order; the manifest bodies themselves are blobs. With it the dir is the whole registry: a restarted registry, or
// one started on a copy of the dir (a node VM's share disk), serves the same images without a re-push.
const indexFile = "manifests.json"

// maxManifest bounds a manifest body; the test images' manifests are a few KiB.
const maxManifest = 4 << 20

type manifestEntry struct {
	Repo      string `json:"repo"`
	Ref       string `json:"ref"`
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

// manifestStore wraps go-containerregistry's registry, whose manifests live in memory only: it records every
// successful manifest PUT and DELETE in indexFile and replays the PUTs into a new registry at start.
type manifestStore struct {
	dir   string
	blobs *diskBlobs
	next  http.Handler

	mu    sync.Mutex // serialises manifest writes, so the index's order is the order they were applied in
	index []manifestEntry
}

func newManifestStore(dir string, blobs *diskBlobs, next http.Handler) (*manifestStore, error) {
	s := &manifestStore{dir: dir, blobs: blobs, next: next}
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest index: %w", err)
	}
	if err := json.Unmarshal(b, &s.index); err != nil {
		return nil, fmt.Errorf("manifest index %s: %w", filepath.Join(dir, indexFile), err)
	}
	for _, e := range s.index {
		if err := s.replay(e); err != nil {
			return nil, fmt.Errorf("manifest index: %s/%s: %w", e.Repo, e.Ref, err)
		}
	}
	return s, nil
}

func (s *manifestStore) replay(e manifestEntry) error {
	h, err := v1.NewHash(e.Digest)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(s.blobs.path(h))
	if err != nil {
		return fmt.Errorf("manifest body: %w", err)
	}
	req := httptest.NewRequest(http.MethodPut, "/v2/"+e.Repo+"/manifests/"+e.Ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", e.MediaType)
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		return fmt.Errorf("re-put: status %d: %s", rec.Code, rec.Body.String())
	}
	return nil
}

// manifestPath splits /v2/<repo>/manifests/<ref>.
func manifestPath(p string) (repo, ref string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	repo, ref = rest[:i], rest[i+len("/manifests/"):]
	return repo, ref, ref != "" && !strings.Contains(ref, "/")
}

func (s *manifestStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo, ref, ok := manifestPath(r.URL.Path)
	if !ok || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
		s.next.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var body []byte
	if r.Method == http.MethodPut {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
		if err != nil || len(body) > maxManifest {
			http.Error(w, "manifest unreadable or too big", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.next.ServeHTTP(sw, r)
	var err error
	switch {
	case r.Method == http.MethodPut && sw.status == http.StatusCreated:
		err = s.recordPut(r.Context(), repo, ref, r.Header.Get("Content-Type"), body)
	case r.Method == http.MethodDelete && sw.status == http.StatusAccepted:
		err = s.recordDelete(repo, ref)
	}
	if err != nil {
		// The client has its answer already; the next start would miss this change.
		fmt.Fprintf(os.Stderr, "registry: persisting manifest %s/%s: %v\n", repo, ref, err)
	}
}

func (s *manifestStore) recordPut(ctx context.Context, repo, ref, mediaType string, body []byte) error {
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return err
	}
	if _, err := s.blobs.Stat(ctx, repo, h); err != nil {
		if err := s.blobs.Put(ctx, repo, h, io.NopCloser(bytes.NewReader(body))); err != nil {
			return err
		}
	}
	s.drop(repo, ref)
	s.index = append(s.index, manifestEntry{Repo: repo, Ref: ref, MediaType: mediaType, Digest: h.String()})
	return s.save()
}

func (s *manifestStore) recordDelete(repo, ref string) error {
	s.drop(repo, ref)
	return s.save()
}

func (s *manifestStore) drop(repo, ref string) {
	kept := s.index[:0]
	for _, e := range s.index {
		if e.Repo != repo || e.Ref != ref {
			kept = append(kept, e)
		}
	}
	s.index = kept
}

// save writes the index atomically: a crash leaves the old or the new one.
func (s *manifestStore) save() error {
	b, err := json.MarshalIndent(s.index, "", " ")
	if err != nil {
		return err
	}
	// Readable by all, as the blobs are: the dir is copied into node VMs and read by other users.
	return atomicfile.WriteFile(filepath.Join(s.dir, indexFile), append(b, '\n'), 0o644)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
