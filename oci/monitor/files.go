package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berthcri/berth/internal/atomicfile"
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

// exitReserveName is the space of a container's exit record, reserved in its bundle at create: a full filesystem
// (the state dir is a small tmpfs on many nodes) does not keep the exit from being recorded.
const exitReserveName = ".exit.json.reserved"

// exitReserveSize is larger than any Exit's JSON.
const exitReserveSize = 4096

// exitRecordFailed is the monitor's exit code when it could not record an exit.
const exitRecordFailed = 3

// reserveExit allocates the blocks writeExit writes the exit record into.
func reserveExit(bundle string) error {
	if err := writeFileAtomic(filepath.Join(bundle, exitReserveName), make([]byte, exitReserveSize)); err != nil {
		return fmt.Errorf("reserve the exit record: %w", err)
	}
	return nil
}

// writeExit records e in <bundle>/exit.json, through the reserved file: overwriting blocks it already has, then
// shrinking it, needs no free space. Without a reservation it writes a new file.
func writeExit(bundle string, e *Exit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	path, reserved := filepath.Join(bundle, ExitFileName), filepath.Join(bundle, exitReserveName)
	f, err := os.OpenFile(reserved, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return writeFileAtomic(path, b)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(reserved, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// As in writeFileAtomic: the record is in place for berthd, a failed dir sync does not undo that.
	_ = atomicfile.SyncDir(bundle)
	return nil
}

func writePidFile(path string, pid int) error {
	return writeFileAtomic(path, []byte(strconv.Itoa(pid)))
}

// writeFileAtomic replaces path with data for berthd to read (internal/atomicfile). A failed directory sync is
// not a failure here: the file is in place for berthd, and only a host crash could lose it, which clears the state
// dir anyway.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil && !errors.Is(err, atomicfile.ErrUnsynced) {
		return err
	}
	return nil
}
