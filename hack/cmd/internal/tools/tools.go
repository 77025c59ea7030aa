// Package tools locates the tools cache hack/tools.sh fills (critest, crictl, CNI plugins, Debian's busybox).
package tools

import (
	"os"
	"path/filepath"
)

// Dir is $BERTH_TOOLS, by default ~/.cache/berth/tools, as in hack/tools.sh.
func Dir() string {
	if d := os.Getenv("BERTH_TOOLS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "berth", "tools")
}
