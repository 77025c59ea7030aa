package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// Cgroup names. A pod has a pod cgroup (the kubelet's, or one berth makes) and, inside it, a leaf cgroup of
// its own for the monitor and pause processes: with cgroup v2 a cgroup with child cgroups may not hold
// processes, and a leaf that only the pod's monitor and pause use can be emptied by killing what is in it
// without touching anything else. Containers get cgroups next to the leaf (oci/ names them).
//
// Names follow the driver, in the form of the OCI linux.cgroupsPath: cgroupfs uses paths
// (/kubepods/burstable/pod<uid>/berth-monitor-<id>), systemd uses slices for the pod cgroup
// (kubepods-burstable-pod<uid>.slice) and "slice:prefix:name" for units inside it, a scope
// berth-monitor-<id>.scope for the leaf.
const (
	defaultCgroupfsParent = "/berth"
	defaultSliceParent    = "berth"
	monitorScopePrefix    = "berth-monitor"
)

// podCgroup returns the pod cgroup for a CRI cgroup_parent. With systemd, the kubelet passes either the slice
// name or its expanded path (/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice): both
// name the last slice, and a path must be that slice's expansion, where systemd puts it. With cgroupfs any path
// is taken as is, relative ones from the root.
func podCgroup(useSystemd bool, parent, id string) (string, error) {
	if useSystemd {
		if parent == "" {
			return defaultSliceParent + "-" + id + ".slice", nil
		}
		slice := path.Base(parent)
		expanded, err := systemd.ExpandSlice(slice)
		if err != nil {
			return "", errdefs.InvalidArgument("cgroup_parent", "%q is not a systemd slice (the cgroup driver is systemd)", parent)
		}
		if strings.Contains(parent, "/") && path.Clean("/"+parent) != expanded {
			return "", errdefs.InvalidArgument("cgroup_parent", "%q: systemd puts slice %s at %s", parent, slice, expanded)
		}
		return slice, nil
	}
	if parent == "" {
		return path.Join(defaultCgroupfsParent, id), nil
	}
	p := path.Clean("/" + parent)
	if p == "/" {
		return "", errdefs.InvalidArgument("cgroup_parent", "%q is the root cgroup", parent)
	}
	return p, nil
}

// childCgroup names a cgroup inside the pod cgroup: a path below it, or a systemd scope in its slice.
func childCgroup(useSystemd bool, pod, scopePrefix, name string) string {
	if useSystemd {
		return pod + ":" + scopePrefix + ":" + name
	}
	return path.Join(pod, scopePrefix+"-"+name)
}

// cgroupConfig turns a cgroup name (see podCgroup and childCgroup) into a config for the cgroup managers.
// Devices are left alone: the pod and monitor cgroups restrict nothing (the kubelet does the same).
func cgroupConfig(useSystemd bool, name string) (*cgroups.Cgroup, error) {
	c := &cgroups.Cgroup{Resources: &cgroups.Resources{SkipDevices: true}, Systemd: useSystemd}
	if !useSystemd {
		c.Path = name
		return c, nil
	}
	switch parts := strings.Split(name, ":"); len(parts) {
	case 1: // a slice; its parent is the slice named by its name less the last dash-separated component
		c.Name = name
		c.Parent = "-.slice"
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			c.Parent = name[:i] + ".slice"
		}
	case 3:
		c.Parent, c.ScopePrefix, c.Name = parts[0], parts[1], parts[2]
	default:
		return nil, fmt.Errorf("cgroup %q: want a slice or slice:prefix:name", name)
	}
	return c, nil
}

func newCgroupManager(useSystemd bool, name string) (cgroups.Manager, error) {
	c, err := cgroupConfig(useSystemd, name)
	if err != nil {
		return nil, err
	}
	m, err := cgmanager.New(c)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	return m, nil
}

// createPodCgroup makes the pod cgroup unless it exists. What berth makes it also removes: its own
// /berth/<id> (marked in the pod dir) with everything in it; a cgroup_parent that did not exist (recorded in
// <state>/cgroups, as other pods may share it) once no pod uses it. A cgroup the kubelet made is the
// kubelet's to remove. The marks are written before the cgroups, so removal after a crash knows them too.
func (m *Manager) createPodCgroup(p *Pod) error {
	cg, err := newCgroupManager(p.systemd, p.cgroup)
	if err != nil {
		return err
	}
	if p.cfg.CgroupParent == "" {
		if err := os.WriteFile(p.path(cgroupOwnedFile), nil, 0o644); err != nil {
			return err
		}
	} else {
		m.sharedCgroupMu.Lock()
		defer m.sharedCgroupMu.Unlock()
		if cgroupExists(cg) {
			return nil
		}
		if err := os.WriteFile(m.sharedCgroupMark(p.cgroup), nil, 0o644); err != nil {
			return err
		}
	}
	if err := cg.Apply(-1); err != nil {
		return fmt.Errorf("create cgroup %s: %w", p.cgroup, err)
	}
	return nil
}

func (m *Manager) removePodCgroup(ctx context.Context, p *Pod) error {
	if p.cgroup == "" { // a pod whose record was lost: it has made no cgroup
		return nil
	}
	cg, err := newCgroupManager(p.systemd, p.cgroup)
	if err != nil {
		return err
	}
	if p.cfg.CgroupParent == "" {
		if !exists(p.path(cgroupOwnedFile)) {
			return nil
		}
		if err := killCgroup(ctx, cg, 0); err != nil {
			return err
		}
		if err := cg.Destroy(); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", p.cgroup, err)
		}
		return os.Remove(p.path(cgroupOwnedFile))
	}
	m.sharedCgroupMu.Lock()
	defer m.sharedCgroupMu.Unlock()
	mark := m.sharedCgroupMark(p.cgroup)
	if !exists(mark) {
		return nil
	}
	removed, err := removeIfUnused(cg, p.systemd)
	if err != nil || !removed {
		return err
	}
	return os.Remove(mark)
}

func (m *Manager) sharedCgroupMark(cgroup string) string {
	return filepath.Join(m.cgroupsDir, url.PathEscape(cgroup))
}

// removeIfUnused removes a cgroup unless it holds processes or child cgroups, and says whether it is gone.
func removeIfUnused(cg cgroups.Manager, useSystemd bool) (bool, error) {
	pids, err := cgroupPids(cg)
	if err != nil {
		return false, err
	}
	if len(pids) > 0 {
		return false, nil
	}
	if useSystemd {
		return true, cg.Destroy() // stops the slice, which is empty
	}
	removed := true
	for _, dir := range cg.GetPaths() {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY):
			removed = false
		default:
			return false, &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
	}
	return removed, nil
}

// killCgroup waits up to grace for the processes in a cgroup (and its children) to exit, then SIGKILLs them
// until none are left or ctx ends. A cgroup that does not exist is empty.
func killCgroup(ctx context.Context, cg cgroups.Manager, grace time.Duration) error {
	graceEnd := time.Now().Add(grace)
	for {
		pids, err := cgroupPids(cg)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(graceEnd) {
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL) // ESRCH: gone meanwhile
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still in cgroup: %w", pids, context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// cgroupPids lists the processes of a cgroup and its children in every hierarchy. (The managers' own
// listing reads the devices hierarchy only, which pod and monitor cgroups leave alone.)
func cgroupPids(cg cgroups.Manager) ([]int, error) {
	var pids []int
	for _, dir := range cg.GetPaths() {
		ps, err := cgroups.GetAllPids(dir)
		// ENODEV: the cgroup was removed while being read (systemd removes an emptied scope by itself).
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list processes of cgroup %s: %w", dir, err)
		}
		for _, p := range ps {
			if !slices.Contains(pids, p) {
				pids = append(pids, p)
			}
		}
	}
	return pids, nil
}

// cgroupExists says whether the cgroup exists in any hierarchy.
func cgroupExists(cg cgroups.Manager) bool {
	for _, dir := range cg.GetPaths() {
		if exists(dir) {
			return true
		}
	}
	return false
}
