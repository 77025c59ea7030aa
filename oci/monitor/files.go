package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berthcri/berth/internal/errdefs"
)

// ReadExit reads <bundle>/exit.json; the error wraps errdefs.ErrNotFound while the container has not
// exited (or its monitor died before recording the exit).
func ReadExit(bundle string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(bundle, ExitFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("exit of %s: %w", bundle, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read exit: %w", err)
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(bundle, ExitFileName), err)
	}
	return &e, nil
}

func writeExit(bundle string, e *Exit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(bundle, ExitFileName), b)
}

func writePidFile(path string, pid int) error {
	return writeFileAtomic(path, []byte(strconv.Itoa(pid)))
}

// writeFileAtomic replaces path with data: a reader sees the old file or the new one, even after a
// crash.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
