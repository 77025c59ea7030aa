// Package apparmor is berthd's side of AppArmor: whether the kernel enforces it, which profiles it has loaded,
// and the default profile that RuntimeDefault means (profile.go), generated for this host and loaded with
// apparmor_parser (default.go). berthd links no AppArmor library: the parser is executed.
package apparmor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

const (
	// securityFS is AppArmor's directory in securityfs; profilesFile lists the loaded profiles.
	securityFS   = "/sys/kernel/security/apparmor"
	profilesFile = securityFS + "/profiles"
)

// Enabled reports whether the kernel enforces AppArmor (runc's and containerd's test).
func Enabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	if err != nil || !bytes.HasPrefix(b, []byte("Y")) {
		return false
	}
	_, err = os.Stat(securityFS)
	return err == nil
}

// Loaded reports whether the kernel has a profile called name loaded (in any mode).
func Loaded(name string) (bool, error) { return loadedIn(profilesFile, name) }

// loadedIn looks for name in a profiles listing: one "name (mode)" per line.
func loadedIn(file, name string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, fmt.Errorf("list loaded AppArmor profiles: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 4096), 1024*1024)
	for s.Scan() {
		line := s.Text()
		if i := strings.LastIndex(line, " ("); i >= 0 && line[:i] == name {
			return true, nil
		}
	}
	if err := s.Err(); err != nil {
		return false, fmt.Errorf("list loaded AppArmor profiles: %w", err)
	}
	return false, nil
}
