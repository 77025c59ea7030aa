package monitor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		bin  string
		kind error // nil: no error
		msg  string
	}{
		"executable":     {bin: exe},
		"empty":          {bin: "", kind: errdefs.ErrInvalidArgument},
		"missing":        {bin: filepath.Join(dir, "none"), kind: errdefs.ErrFailedPrecondition, msg: filepath.Join(dir, "none") + ": missing"},
		"directory":      {bin: dir, kind: errdefs.ErrFailedPrecondition, msg: "not an executable file"},
		"not executable": {bin: plain, kind: errdefs.ErrFailedPrecondition, msg: "not an executable file"},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkBinary(tc.bin)
			switch {
			case tc.kind == nil && err != nil:
				t.Fatalf("checkBinary(%q) = %v", tc.bin, err)
			case tc.kind != nil && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("checkBinary(%q) = %v, want an error with %q", tc.bin, err, tc.msg)
			case tc.kind != nil && !errors.Is(err, tc.kind):
				t.Fatalf("checkBinary(%q) = %v, want it to wrap %v", tc.bin, err, tc.kind)
			}
		})
	}
}

func TestDefaultBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DefaultBinary()
	if want := filepath.Join(filepath.Dir(exe), BinaryName); err != nil || got != want {
		t.Errorf("DefaultBinary() = %q, %v, want %q", got, err, want)
	}
}

// Start fails before it makes anything when the monitor's executable is missing.
func TestStartWithoutBinary(t *testing.T) {
	dir := t.TempDir()
	podDir := filepath.Join(dir, "pod")
	bin := filepath.Join(dir, BinaryName)
	_, err := Start(context.Background(), StartOptions{Dir: podDir, RuncRoot: filepath.Join(dir, "runc"), Binary: bin})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), bin) {
		t.Errorf("Start = %v, want FailedPrecondition naming %s", err, bin)
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod dir made: %v", err)
	}
}
