package ociruntime

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// versionTimeout bounds "<binary> --version".
const versionTimeout = 10 * time.Second

// SpecVersion is the runtime-spec version binary states ("spec: 1.0.0" in runc's and crun's --version), "" when it
// states none. berthd asks once, at start, beside the features.
func SpecVersion(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.WaitDelay = waitDelay
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", binary, err)
	}
	return parseSpecVersion(string(out)), nil
}

func parseSpecVersion(out string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "spec:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// majorMinor parses "1.2.1" (or "1.2.1-dev") as 1, 2.
func majorMinor(v string) (int, int, bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}

// newer says whether spec version a has a later minor than b.
func newer(a, b string) bool {
	am, an, ok1 := majorMinor(a)
	bm, bn, ok2 := majorMinor(b)
	return ok1 && ok2 && (am > bm || am == bm && an > bn)
}

// FitVersion is the ociVersion to write for a runtime that states want: want when version is of a later minor,
// else version. Runtimes refuse a version they do not know (crun 1.8 takes 1.0 and 1.1, berth writes runtime-spec
// 1.2), while the fields berth writes for a handler's pods are older than 1.2 but for those of features it
// advertises off for handlers (idmapped mounts of user-namespaced pods).
func FitVersion(version, want string) string {
	if want != "" && newer(version, want) {
		return want
	}
	return version
}
