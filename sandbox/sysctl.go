package sandbox

import (
	"fmt"
	"os"
	"slices"

	"github.com/berthcri/berth/internal/sysctl"
)

// classifySysctl says which of the pod's namespaces a sysctl lives in (internal/sysctl's rules).
func classifySysctl(name string) (nsKind, error) {
	ns, err := sysctl.Classify(name)
	return nsKind(ns), err
}

// writeSysctls writes the sysctls in name order, into the namespaces of the calling thread.
func writeSysctls(sysctls map[string]string) error {
	names := make([]string, 0, len(sysctls))
	for n := range sysctls {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f, err := os.OpenFile(sysctl.Path(n), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", n, err)
		}
		_, err = f.WriteString(sysctls[n])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sysctl %s=%q: %w", n, sysctls[n], err)
		}
	}
	return nil
}
