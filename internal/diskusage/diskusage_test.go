package diskusage

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCounter(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(a, "f"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	// A hard link in another tree is the same file: counted once.
	if err := os.Link(filepath.Join(a, "f"), filepath.Join(b, "link")); err != nil {
		t.Fatal(err)
	}
	var c Counter
	for _, d := range []string{a, b} {
		if err := c.Add(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if c.Inodes != 3 { // two dirs and one file
		t.Errorf("inodes = %d, want 3", c.Inodes)
	}
	if c.Bytes < 64<<10 || c.Bytes > 64<<10+64<<10 {
		t.Errorf("bytes = %d, want about 64 KiB plus two dirs", c.Bytes)
	}
	if err := c.Add(context.Background(), filepath.Join(a, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: %v, want ErrNotExist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Add(ctx, a); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk: %v", err)
	}
}
