package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/berthcri/berth/cri"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/ociruntime"
)

// runtimeHandler is a configured RuntimeClass handler: its binary, berth's records of its containers, and what
// Status says of it.
type runtimeHandler struct {
	binary  ctr.Binary
	records string
	status  cri.RuntimeHandler
}

// runtimeHandlers reads the [runtimes.NAME] tables: makes each handler's dirs and probes its features. systemd is
// the resolved cgroup driver; a handler whose systemd_cgroup says otherwise is refused, as its cgroups would not be
// the pod's.
func runtimeHandlers(ctx context.Context, cfg config.Config, systemd bool, log *slog.Logger) (map[string]runtimeHandler, error) {
	out := map[string]runtimeHandler{}
	for _, name := range slices.Sorted(maps.Keys(cfg.Runtimes)) {
		rc := cfg.Runtimes[name]
		if rc.SystemdCgroup != nil && *rc.SystemdCgroup != systemd {
			return nil, fmt.Errorf("runtimes.%s.systemd_cgroup: %v, but the cgroup driver in use is %s: %w", name, *rc.SystemdCgroup, driverName(systemd), errdefs.ErrInvalidArgument)
		}
		h := runtimeHandler{
			binary:  ctr.Binary{Path: rc.Binary, Root: cfg.RuntimeRoot(name), ExtraArgs: rc.ExtraArgs},
			records: cfg.RuntimeRecords(name),
			status:  cri.RuntimeHandler{Name: name, PodAnnotations: rc.PodAnnotations},
		}
		for _, d := range []string{h.binary.Root, h.records} {
			if err := privdir.Make(d, privdir.Private); err != nil {
				return nil, fmt.Errorf("runtimes.%s: %w", name, err)
			}
		}
		f, err := ociruntime.ProbeFeatures(ctx, rc.Binary)
		if err != nil {
			log.Warn("runtime handler states no features: none advertised", "handler", name, "err", err)
		}
		h.status.RecursiveReadOnly = f.RecursiveReadOnly()
		if h.status.SpecVersion, err = ociruntime.SpecVersion(ctx, rc.Binary); err != nil {
			log.Warn("runtime handler states no runtime-spec version: specs are written as berth's", "handler", name, "err", err)
		}
		// User namespaces stay off: no binary states what berth's user-namespaced pods need of it (joining the pause
		// process's user namespace, idmapped mounts of berth's own), and crun 1.8.1 fails them (mount_setattr of the
		// pod's hostname bind mount: EPERM; critest's NamespaceMode_POD spec).
		log.Info("runtime handler", "handler", name, "binary", rc.Binary, "root", h.binary.Root,
			"recursiveReadOnlyMounts", h.status.RecursiveReadOnly, "userNamespaces", h.status.UserNamespaces,
			"specVersion", h.status.SpecVersion)
		out[name] = h
	}
	return out, nil
}

func driverName(systemd bool) string {
	if systemd {
		return "systemd"
	}
	return "cgroupfs"
}

// handlerRuntimes are berthd's side of the handlers: the runtimes that act on their containers, for
// cri.HostContainers, and what Status lists.
func handlerRuntimes(hs map[string]runtimeHandler, systemd bool, helper string) ([]*ctr.Runtime, []cri.RuntimeHandler) {
	var rts []*ctr.Runtime
	var status []cri.RuntimeHandler
	for _, name := range slices.Sorted(maps.Keys(hs)) {
		h := hs[name]
		rts = append(rts, &ctr.Runtime{Root: h.records, Systemd: systemd, Helper: helper, Binary: h.binary})
		status = append(status, h.status)
	}
	return rts, status
}
