package cri

import (
	"errors"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/sandbox"
)

// usernsProbes caches the answer of userNamespaces by runtime root: it does not change while berthd runs.
var usernsProbes sync.Map // root dir → func() error

// userNamespaces says why pods cannot have their own user namespace on this host; nil when they can. It is probed
// once per runtime root (Sandboxes.UserNamespaces).
func (s *RuntimeServer) userNamespaces() error {
	dir := s.opts.RootDir
	if dir == "" || s.opts.Sandboxes == nil {
		return errors.New("no pod runtime")
	}
	probe, _ := usernsProbes.LoadOrStore(dir, sync.OnceValue(s.opts.Sandboxes.UserNamespaces))
	return probe.(func() error)()
}

// podUserNS is the pod's own user namespace (userns_options mode POD, validated), nil when it uses the host's.
func podUserNS(cfg *runtimeapi.PodSandboxConfig) *sandbox.UserNamespace {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u == nil || u.GetMode() != runtimeapi.NamespaceMode_POD { // POD is 0: unset options are the host's
		return nil
	}
	return &sandbox.UserNamespace{UIDs: sandboxMappings(u.GetUids()), GIDs: sandboxMappings(u.GetGids())}
}

func sandboxMappings(ms []*runtimeapi.IDMapping) []sandbox.IDMapping {
	out := make([]sandbox.IDMapping, 0, len(ms))
	for _, m := range ms {
		out = append(out, sandbox.IDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

// imageIDMap idmaps a container's image files (rootfs and image volumes) into its pod's user namespace; nil when
// the pod has none.
func imageIDMap(pod PodRuntime) *image.IDMap {
	u := pod.Config().UserNS
	if u == nil {
		return nil
	}
	return &image.IDMap{UserNS: pod.UserNSPath(), UID: int(hostRoot(u.UIDs)), GID: int(hostRoot(u.GIDs))}
}

// hostRoot is the host id a mapping gives the namespace's id 0 (validation made sure one does).
func hostRoot(ms []sandbox.IDMapping) uint32 {
	for _, m := range ms {
		if m.ContainerID == 0 {
			return m.HostID
		}
	}
	return 0
}
