package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berthcri/berth/internal/errdefs"
)

// BinaryName is the monitor's executable, installed in the same directory as berthd.
const BinaryName = "berth-monitor"

// DefaultBinary is BinaryName in the directory of the running executable (berthd's), the monitor Start
// runs for berthd.
func DefaultBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", BinaryName, err)
	}
	return filepath.Join(filepath.Dir(exe), BinaryName), nil
}

// checkBinary fails with a message naming the path when bin is not an executable file: without it no pod
// can start.
func checkBinary(bin string) error {
	if bin == "" {
		return errdefs.InvalidArgument("binary", "empty")
	}
	var problem string
	switch fi, err := os.Stat(bin); {
	case errors.Is(err, fs.ErrNotExist):
		problem = "missing"
	case err != nil:
		problem = err.Error()
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		problem = fmt.Sprintf("not an executable file (mode %v)", fi.Mode())
	default:
		return nil
	}
	return errdefs.FailedPrecondition("monitor executable %s: %s: install %s beside berthd (make install does)", bin, problem, BinaryName)
}
