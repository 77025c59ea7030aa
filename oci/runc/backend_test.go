package runc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthcri/berth/oci/ctr"
)

// With -binary the helper runs the OCI runtime binary, with berth's global options then the handler's extra args,
// instead of libcontainer.
func TestHelperRunsBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "runtime")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\" >\""+dir+"/args\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, records := filepath.Join(dir, "root"), filepath.Join(dir, "records")
	for _, d := range []string{filepath.Join(root, "c1"), records} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	stdout := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	code := Helper([]string{"-root", records, "-id", "c1", "-binary", bin, "-binary-root", root, "-binary-arg", "--debug", ctr.OpStart})
	os.Stdout = stdout
	w.Close()
	out := make([]byte, 4096)
	n, _ := r.Read(out)
	if code != 0 {
		t.Fatalf("helper exit %d: %s", code, out[:n])
	}
	args, err := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(args))
	if len(got) < 8 || got[0] != "--root" || got[1] != root || got[6] != "--debug" || strings.Join(got[len(got)-2:], " ") != "start c1" {
		t.Errorf("binary args %q, want --root %s --log … --log-format json --debug start c1", got, root)
	}
}
