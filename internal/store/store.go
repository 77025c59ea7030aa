// Package store keeps versioned JSON records, one file per record, written atomically.
//
// Every record lives in <dir>/<id>.json as {"version":N,"kind":"...","data":{...}}. All records are loaded at
// Open and reads are served from memory; writes go to disk first (temp file, fsync, rename, fsync dir) and only
// then to memory, so memory never holds a value that a crash could lose.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/berthcri/berth/internal/atomicfile"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/keylock"
	"github.com/berthcri/berth/internal/privdir"
)

const (
	// tempPrefix marks files of writes in progress. Ids may not start with ".", so no record file can carry it.
	tempPrefix = atomicfile.TempPrefix
	suffix     = ".json"
	// maxIDLen keeps "<tempPrefix><id>.json-<random>" under the 255-byte file name limit.
	maxIDLen = 200
)

// Store keeps one JSON record per id under dir, all loaded into memory at Open. Reads are served from memory.
type Store[T any] struct {
	dir     string
	kind    string
	version int

	mu      sync.RWMutex
	records map[string]T

	// locks serializes writers of one id while writers of different ids run in parallel.
	locks keylock.Map

	// beforeStep, when set by tests, runs before each step of a write; an error aborts the write at that step.
	beforeStep func(step string) error
}

type envelope struct {
	Version int             `json:"version"`
	Kind    string          `json:"kind"`
	Data    json.RawMessage `json:"data"`
}

// Open loads every record of kind under dir, creating dir if needed. A record written by a newer version of berth
// is refused rather than misread; older records are loaded as they are. Temp files left by interrupted writes are
// removed.
func Open[T any](dir string, kind string, version int) (*Store[T], error) {
	if version < 1 {
		return nil, errdefs.InvalidArgument("version", "%d is not >= 1", version)
	}
	if err := privdir.Make(dir, privdir.Private); err != nil {
		return nil, fmt.Errorf("open %s store: %w", kind, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", kind, err)
	}
	s := &Store[T]{dir: dir, kind: kind, version: version, records: map[string]T{}}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, tempPrefix):
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open %s store: remove stale temp file: %w", kind, err)
			}
		case e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, suffix):
			// Not ours: leave it alone.
		default:
			id := strings.TrimSuffix(name, suffix)
			if err := validateID(id); err != nil {
				return nil, fmt.Errorf("open %s store: %s: %w", kind, path, err)
			}
			v, err := s.load(path)
			if err != nil {
				return nil, fmt.Errorf("open %s store: %w", kind, err)
			}
			s.records[id] = v
		}
	}
	return s, nil
}

func (s *Store[T]) load(path string) (T, error) {
	var zero T
	b, err := os.ReadFile(path)
	if err != nil {
		return zero, err
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return zero, fmt.Errorf("%s: corrupt record: %w", path, err)
	}
	switch {
	case env.Kind != s.kind:
		return zero, fmt.Errorf("%s: record kind %q, want %q: %w", path, env.Kind, s.kind, errdefs.ErrFailedPrecondition)
	case env.Version < 1:
		return zero, fmt.Errorf("%s: corrupt record: version %d: %w", path, env.Version, errdefs.ErrFailedPrecondition)
	case env.Version > s.version:
		return zero, fmt.Errorf("%s: record version %d is newer than supported version %d (written by a newer berth?): %w",
			path, env.Version, s.version, errdefs.ErrFailedPrecondition)
	case len(env.Data) == 0 || string(env.Data) == "null":
		return zero, fmt.Errorf("%s: corrupt record: no data: %w", path, errdefs.ErrFailedPrecondition)
	}
	var v T
	if err := json.Unmarshal(env.Data, &v); err != nil {
		return zero, fmt.Errorf("%s: corrupt record data: %w", path, err)
	}
	return v, nil
}

// Get returns the stored value; callers must treat it as read-only.
func (s *Store[T]) Get(id string) (T, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.records[id]
	return v, ok
}

// Find returns the record of id, or else of the one id that starts with it (crictl lets operators type an id
// prefix); false when none or several match.
func (s *Store[T]) Find(id string) (T, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.records[id]; ok || id == "" {
		return v, ok
	}
	var found []string
	for k := range s.records {
		if strings.HasPrefix(k, id) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		var zero T
		return zero, false
	}
	return s.records[found[0]], true
}

// List returns a snapshot of all values ordered by id.
func (s *Store[T]) List() []T {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]T, 0, len(s.records))
	for _, id := range slices.Sorted(maps.Keys(s.records)) {
		out = append(out, s.records[id])
	}
	return out
}

// Create persists a new record and returns once it is on disk.
func (s *Store[T]) Create(id string, v T) error {
	if err := validateID(id); err != nil {
		return err
	}
	unlock := s.lock(id)
	defer unlock()
	if _, ok := s.Get(id); ok {
		return errdefs.AlreadyExists(s.kind, id)
	}
	stored, err := s.persist(id, v, nil)
	if err != nil {
		return err
	}
	s.set(id, stored)
	return nil
}

// Update applies fn to a deep copy of the record and persists the result. If fn or the write fails, neither
// memory nor disk change. Updates of one id are serialized.
func (s *Store[T]) Update(id string, fn func(*T) error) (T, error) {
	var zero T
	if err := validateID(id); err != nil {
		return zero, err
	}
	unlock := s.lock(id)
	defer unlock()
	cur, ok := s.Get(id)
	if !ok {
		return zero, errdefs.NotFound(s.kind, id)
	}
	prev, err := json.Marshal(cur)
	if err != nil {
		return zero, fmt.Errorf("update %s %q: %w", s.kind, id, err)
	}
	var next T
	if err := json.Unmarshal(prev, &next); err != nil {
		return zero, fmt.Errorf("update %s %q: %w", s.kind, id, err)
	}
	if err := fn(&next); err != nil {
		return zero, err
	}
	stored, err := s.persist(id, next, prev)
	if err != nil {
		return zero, err
	}
	s.set(id, stored)
	return stored, nil
}

// Delete removes the record; deleting an absent record is not an error.
func (s *Store[T]) Delete(id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	unlock := s.lock(id)
	defer unlock()
	// Remove and sync even when the id is not in memory: a previous Delete may have failed after the remove.
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s %q: %w", s.kind, id, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("delete %s %q: %w", s.kind, id, err)
	}
	s.mu.Lock()
	delete(s.records, id)
	s.mu.Unlock()
	return nil
}

func (s *Store[T]) set(id string, v T) {
	s.mu.Lock()
	s.records[id] = v
	s.mu.Unlock()
}

// lock takes the writer lock of id and returns its release. A write holds it for a file write and a rename only,
// so it is waited for without a context.
func (s *Store[T]) lock(id string) func() {
	unlock, _ := s.locks.Lock(context.Background(), id) // fails only when its context ends
	return unlock
}

func (s *Store[T]) path(id string) string { return filepath.Join(s.dir, id+suffix) }

// persist writes v as the record of id and returns the value as it will read back from disk, so that memory
// never holds what a restart would not (fields that JSON drops, maps the caller still holds). prev is the
// record's current data, nil for a new record; it is put back if the write fails after the rename.
func (s *Store[T]) persist(id string, v T, prev json.RawMessage) (T, error) {
	var zero T
	data, err := json.Marshal(v)
	if err != nil {
		return zero, fmt.Errorf("persist %s %q: %w", s.kind, id, err)
	}
	var stored T
	if err := json.Unmarshal(data, &stored); err != nil {
		return zero, fmt.Errorf("persist %s %q: %w", s.kind, id, err)
	}
	renamed, err := s.writeRecord(id, data)
	if err == nil {
		return stored, nil
	}
	if renamed {
		// The new file is visible but may not be durable; put the old state back so memory and disk agree.
		var rerr error
		if prev == nil {
			if rerr = os.Remove(s.path(id)); rerr == nil {
				rerr = atomicfile.SyncDir(s.dir)
			}
		} else {
			_, rerr = s.writeRecord(id, prev)
		}
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore previous record: %w", rerr))
		}
	}
	return zero, fmt.Errorf("persist %s %q: %w", s.kind, id, err)
}

// writeRecord replaces the file of id (internal/atomicfile). renamed reports whether the new file became visible,
// which matters only when err is set.
func (s *Store[T]) writeRecord(id string, data json.RawMessage) (renamed bool, err error) {
	b, err := json.Marshal(envelope{Version: s.version, Kind: s.kind, Data: data})
	if err != nil {
		return false, err
	}
	err = atomicfile.Write(s.path(id), append(b, '\n'), atomicfile.Options{Perm: 0o600, BeforeStep: s.beforeStep})
	return errors.Is(err, atomicfile.ErrUnsynced), err
}

// validateID keeps ids usable as plain file names inside dir.
func validateID(id string) error {
	switch {
	case id == "":
		return errdefs.InvalidArgument("id", "empty")
	case len(id) > maxIDLen:
		return errdefs.InvalidArgument("id", "%q is longer than %d bytes", id, maxIDLen)
	case strings.ContainsAny(id, "/\x00"):
		return errdefs.InvalidArgument("id", "%q contains '/' or NUL", id)
	case strings.Contains(id, ".."):
		return errdefs.InvalidArgument("id", "%q contains \"..\"", id)
	case strings.HasPrefix(id, "."):
		return errdefs.InvalidArgument("id", "%q starts with '.'", id)
	}
	return nil
}
