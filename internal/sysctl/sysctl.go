// Package sysctl knows which sysctls a pod may set: the namespaced ones, by the namespace they live in. Both the CRI
// validation (oci) and the pod set-up (sandbox) use it, so what is accepted is what gets applied.
package sysctl

import (
	"strings"

	"github.com/berthcri/berth/internal/errdefs"
)

// Namespace is the namespace a sysctl lives in: "net", "ipc" or "uts".
type Namespace string

const (
	Net Namespace = "net"
	IPC Namespace = "ipc"
	UTS Namespace = "uts"
)

// ipcSysctls are the kernel.* sysctls of the IPC namespace; the list is runc's, so containers that repeat a pod
// sysctl pass runc's validation too.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// Dotted returns a sysctl name in the dotted form. In the slashed form (net/ipv4/conf/eth0.100/forwarding) dots
// belong to a component; the dotted form writes them as slashes (net.ipv4.conf.eth0/100.forwarding), which is what
// the kubelet sends.
func Dotted(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return swapDotsAndSlashes(name)
}

// Path is the /proc/sys file of a (classified) sysctl name.
func Path(name string) string {
	return "/proc/sys/" + swapDotsAndSlashes(Dotted(name))
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

// Classify says which namespace a sysctl lives in; sysctls that are not namespaced (they would change the host) and
// malformed names are refused with an error wrapping errdefs.ErrInvalidArgument.
func Classify(name string) (Namespace, error) {
	dotted := Dotted(name)
	for _, c := range strings.Split(dotted, ".") {
		if c == "" || strings.Trim(c, "/") != c || strings.Contains(c, "//") {
			return "", errdefs.InvalidArgument("sysctls", "%q is not a sysctl name", name)
		}
	}
	switch {
	case strings.HasPrefix(dotted, "net."):
		return Net, nil
	case ipcSysctls[dotted], strings.HasPrefix(dotted, "fs.mqueue."):
		return IPC, nil
	case dotted == "kernel.domainname":
		return UTS, nil
	case dotted == "kernel.hostname":
		return "", errdefs.InvalidArgument("sysctls", "%q conflicts with the hostname field", name)
	}
	return "", errdefs.InvalidArgument("sysctls", "%q is not a namespaced sysctl", name)
}
