package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// helperPkg is where the small programs baked into the images live (relative to the module root).
const helperPkg = "./hack/images/"

// buildHelpers compiles the static helper programs (pause, nginx, nnp) reproducibly: no cgo, no
// paths, no build id, no VCS stamp, a fixed GOAMD64, and none of the caller's GOFLAGS.
func buildHelpers(ctx context.Context, moduleDir string, names ...string) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp("", "mkimages-helpers-")
	if err != nil {
		return nil, fmt.Errorf("helpers: %w", err)
	}
	defer os.RemoveAll(tmp)

	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", tmp + "/"}
	for _, name := range names {
		args = append(args, helperPkg+name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build helpers: %w\n%s", err, msg)
	}
	out := map[string][]byte{}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			return nil, fmt.Errorf("helper %s: %w", name, err)
		}
		out[name] = data
	}
	return out, nil
}
