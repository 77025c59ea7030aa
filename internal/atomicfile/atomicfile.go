// Package atomicfile replaces a file so that a reader, or the next start after a crash, sees the old content or
// the new, never a mix: a temp file in the same directory (mode 0600 until written), write, fsync, rename over the
// file, fsync the directory. berthd, berth-monitor and the installer use it, so it depends on the standard library
// only.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temp file: a crash mid-write leaves one, which a directory's owner may sweep
// at start-up (internal/store does) and must otherwise skip.
const TempPrefix = ".tmp-"

// ErrUnsynced marks a write whose new file replaced the old one but whose directory sync failed: until the
// directory is synced, a crash may bring the old file back.
var ErrUnsynced = errors.New("replaced, but the directory sync failed")

// Options tune Write.
type Options struct {
	// Perm is the file's mode, exactly: not masked by the umask, set after Prepare (a chown clears setuid).
	Perm fs.FileMode
	// Prepare, when set, runs on the written temp file before it is synced and renamed (owner, times).
	Prepare func(f *os.File) error
	// BeforeStep, set by callers' tests, runs before each step ("create", "write", "sync", "rename", "sync-dir");
	// an error aborts the write at that step.
	BeforeStep func(step string) error
}

// WriteFile replaces path with data, of mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, data, Options{Perm: perm})
}

// Write replaces path with data. On error the old file (or its absence) stays and no temp file is left, unless
// the error wraps ErrUnsynced: then the new file is in place. The error names path.
func Write(path string, data []byte, o Options) error {
	if err := write(path, data, o); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func write(path string, data []byte, o Options) error {
	step := func(name string) error {
		if o.BeforeStep == nil {
			return nil
		}
		return o.BeforeStep(name)
	}
	dir := filepath.Dir(path)
	if err := step("create"); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	err = step("write")
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && o.Prepare != nil {
		err = o.Prepare(f)
	}
	if err == nil {
		err = f.Chmod(o.Perm)
	}
	if err == nil {
		err = step("sync")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = step("rename")
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		// The temp file is ours alone: nothing else can hold it, and an error here only leaves a file the owner's
		// sweep (TempPrefix) removes.
		os.Remove(f.Name())
		return err
	}
	err = step("sync-dir")
	if err == nil {
		err = SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsynced, err)
	}
	return nil
}

// SyncDir makes the creations, renames and removals in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
