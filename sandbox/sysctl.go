package sandbox

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/berthcri/berth/internal/errdefs"
)

// ipcSysctls are the kernel.* sysctls of the IPC namespace; the list is runc's, so containers that repeat
// a pod sysctl pass runc's validation too.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// dottedSysctl returns a sysctl name in the dotted form. In the slashed form (net/ipv4/conf/eth0.100/forwarding)
// dots belong to a component; the dotted form writes them as slashes (net.ipv4.conf.eth0/100.forwarding),
// which is what the kubelet sends.
func dottedSysctl(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return swapDotsAndSlashes(name)
}

func swapDotsAndSlashes(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}

// classifySysctl says which of the pod's namespaces a sysctl lives in; sysctls that are not namespaced
// (they would change the host) are refused.
func classifySysctl(name string) (nsKind, error) {
	dotted := dottedSysctl(name)
	for _, c := range strings.Split(dotted, ".") {
		if c == "" || strings.Trim(c, "/") != c || strings.Contains(c, "//") {
			return "", errdefs.InvalidArgument("sysctls", "%q is not a sysctl name", name)
		}
	}
	switch {
	case strings.HasPrefix(dotted, "net."):
		return nsNet, nil
	case ipcSysctls[dotted], strings.HasPrefix(dotted, "fs.mqueue."):
		return nsIPC, nil
	case dotted == "kernel.domainname":
		return nsUTS, nil
	case dotted == "kernel.hostname":
		return "", errdefs.InvalidArgument("sysctls", "%q conflicts with the hostname field", name)
	}
	return "", errdefs.InvalidArgument("sysctls", "%q is not a namespaced sysctl", name)
}

// sysctlPath is the /proc/sys file of a (validated) sysctl name.
func sysctlPath(name string) string {
	return "/proc/sys/" + swapDotsAndSlashes(dottedSysctl(name))
}

// writeSysctls writes the sysctls in name order, into the namespaces of the calling thread.
func writeSysctls(sysctls map[string]string) error {
	names := make([]string, 0, len(sysctls))
	for n := range sysctls {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f, err := os.OpenFile(sysctlPath(n), os.O_WRONLY|os.O_TRUNC, 0)
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
