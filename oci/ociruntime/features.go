package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"time"

	"github.com/berthcri/berth/internal/tail"
)

// featuresTimeout bounds "<binary> features".
const featuresTimeout = 10 * time.Second

// Features is what berth reads of "<binary> features" (the runtime-spec's features.json).
type Features struct {
	MountOptions []string `json:"mountOptions,omitempty"`
}

// RecursiveReadOnly says whether the runtime knows the "rro" mount option.
func (f Features) RecursiveReadOnly() bool { return slices.Contains(f.MountOptions, "rro") }

// ProbeFeatures runs "<binary> features". A runtime without the command (crun before 1.9) is an error: it
// states nothing, so nothing is advertised for it.
func ProbeFeatures(ctx context.Context, binary string) (Features, error) {
	ctx, cancel := context.WithTimeout(ctx, featuresTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "features")
	stderr := tail.New(maxErrText)
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	out, err := cmd.Output()
	if err != nil {
		return Features{}, fmt.Errorf("%s features: %w: %s", binary, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var f Features
	if err := json.Unmarshal(out, &f); err != nil {
		return Features{}, fmt.Errorf("%s features: %w", binary, err)
	}
	return f, nil
}
