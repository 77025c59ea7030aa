package monitor

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthcri/berth/internal/privdir"
)

// UserNamespace is a new user namespace for the pod's pause process, a pod's own (KEP-127). The kernel makes it
// first and gives it the namespaces made in the same clone: the pause process's PID namespace and those of Unshare.
// The caller pins them from /proc/<pause pid>/ns; only namespaces owned by the pod's user namespace let the root of
// its containers mount /proc, sysfs and mqueue. The zero value is no user namespace.
type UserNamespace struct {
	UIDs, GIDs []syscall.SysProcIDMap
	// Unshare names the other namespaces to make with it: "net", "ipc", "uts".
	Unshare []string
}

var unshareFlags = map[string]uintptr{"net": syscall.CLONE_NEWNET, "ipc": syscall.CLONE_NEWIPC, "uts": syscall.CLONE_NEWUTS}

// apply adds the user namespace to the pause process's clone.
func (u UserNamespace) apply(attr *syscall.SysProcAttr) error {
	if len(u.UIDs) == 0 && len(u.GIDs) == 0 {
		return nil
	}
	attr.Cloneflags |= syscall.CLONE_NEWUSER
	for _, name := range u.Unshare {
		f, ok := unshareFlags[name]
		if !ok {
			return fmt.Errorf("unknown namespace %q", name)
		}
		attr.Cloneflags |= f
	}
	attr.UidMappings, attr.GidMappings = u.UIDs, u.GIDs
	// The pause process drops its supplementary groups, and containers set theirs.
	attr.GidMappingsEnableSetgroups = true
	// The clone keeps the host ids, which the namespace does not map: become its root before the exec, or the exec
	// drops every capability in it (the pause process needs CAP_SYS_CHROOT). It keeps the monitor's groups (the
	// userns group, StartOptions.Groups) to reach its dir through the shared state dirs, and drops them there.
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	return nil
}

// rootGID is the host gid of the namespace's root, whose dirs on the way to its files are 0710 to it;
// privdir.Private without a user namespace.
func (u UserNamespace) rootGID() int {
	for _, m := range u.GIDs {
		if m.ContainerID == 0 {
			return m.HostID
		}
	}
	return privdir.Private
}

// args are the monitor's command-line flags for u.
func (u UserNamespace) args() []string {
	if len(u.UIDs) == 0 && len(u.GIDs) == 0 {
		return nil
	}
	args := []string{"-pause-uids", formatMappings(u.UIDs), "-pause-gids", formatMappings(u.GIDs)}
	if len(u.Unshare) > 0 {
		args = append(args, "-pause-unshare", strings.Join(u.Unshare, ","))
	}
	return args
}

// flags registers the flags args writes.
func (u *UserNamespace) flags(fs *flag.FlagSet) {
	fs.Func("pause-uids", "with -pause: uid mappings of a new user namespace, container:host:size,…", func(s string) (err error) {
		u.UIDs, err = parseMappings(s)
		return err
	})
	fs.Func("pause-gids", "with -pause-uids: its gid mappings", func(s string) (err error) {
		u.GIDs, err = parseMappings(s)
		return err
	})
	fs.Func("pause-unshare", "with -pause-uids: namespaces to make with it (net,ipc,uts)", func(s string) error {
		u.Unshare = strings.Split(s, ",")
		if i := slices.IndexFunc(u.Unshare, func(n string) bool { return unshareFlags[n] == 0 }); i >= 0 {
			return fmt.Errorf("unknown namespace %q", u.Unshare[i])
		}
		return nil
	})
}

func formatMappings(ms []syscall.SysProcIDMap) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
	}
	return strings.Join(parts, ",")
}

func parseMappings(s string) ([]syscall.SysProcIDMap, error) {
	var out []syscall.SysProcIDMap
	for part := range strings.SplitSeq(s, ",") {
		var ids [3]int
		fields := strings.Split(part, ":")
		if len(fields) != 3 {
			return nil, fmt.Errorf("mapping %q: want container:host:size", part)
		}
		for i, f := range fields {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("mapping %q: %w", part, err)
			}
			ids[i] = int(n)
		}
		out = append(out, syscall.SysProcIDMap{ContainerID: ids[0], HostID: ids[1], Size: ids[2]})
	}
	return out, nil
}
