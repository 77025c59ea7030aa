package cri

import (
	"fmt"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/kernel"
	"github.com/berthcri/berth/oci/ociruntime"
)

// RuntimeHandler is a configured RuntimeClass handler besides "" and "runc" (libcontainer): an OCI runtime binary
// the pod's monitor runs containers with. Its fields say what the binary declares; Status adds what the host has.
type RuntimeHandler struct {
	Name string
	// RecursiveReadOnly: "<binary> features" lists the "rro" mount option.
	RecursiveReadOnly bool
	// UserNamespaces: berth's user-namespaced pods were tested to work with this runtime.
	UserNamespaces bool
	// PodAnnotations are the pod annotations its containers' OCI specs get: keys, or prefixes ending in "*".
	PodAnnotations []string
	// SpecVersion is the runtime-spec version the binary states (its --version); a container's ociVersion is
	// written no newer. "" when it states none.
	SpecVersion string
}

// builtinHandlers run containers with libcontainer in berth-monitor.
var builtinHandlers = []string{"", "runc"}

// runtimeHandler finds the pod's handler: nil for a built-in one, NotFound naming runtime_handler for one not
// configured.
func (s *RuntimeServer) runtimeHandler(name string) (*RuntimeHandler, error) {
	for _, b := range builtinHandlers {
		if name == b {
			return nil, nil
		}
	}
	for i := range s.opts.RuntimeHandlers {
		if h := &s.opts.RuntimeHandlers[i]; h.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("runtime_handler %q is not configured (berth.toml [runtimes.NAME]): %w", name, errdefs.ErrNotFound)
}

// checkRuntimeHandler refuses a pod its handler cannot run.
func (s *RuntimeServer) checkRuntimeHandler(r *runtimeapi.RunPodSandboxRequest) error {
	h, err := s.runtimeHandler(r.GetRuntimeHandler())
	if err != nil || h == nil {
		return err
	}
	if podUserNS(r.GetConfig()) != nil && !h.UserNamespaces {
		return fmt.Errorf("runtime_handler %q: no user namespaces with this runtime (config.linux.security_context.namespace_options.userns_options): %w",
			h.Name, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// runtimeHandlers is Status's list: the built-in handlers, then the configured ones in their order.
func (s *RuntimeServer) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	rro := kernel.MountSetattr() == nil
	userns := s.userNamespaces() == nil
	var out []*runtimeapi.RuntimeHandler
	for _, b := range builtinHandlers {
		out = append(out, &runtimeapi.RuntimeHandler{Name: b,
			Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: rro, UserNamespaces: userns}})
	}
	for _, h := range s.opts.RuntimeHandlers {
		out = append(out, &runtimeapi.RuntimeHandler{Name: h.Name, Features: &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: rro && h.RecursiveReadOnly, UserNamespaces: userns && h.UserNamespaces}})
	}
	return out
}

// fitSpecToHandler makes a container's spec one its pod's handler takes: an ociVersion no newer than the binary
// states, and the pod annotations the handler asks for, as containerd's pod_annotations does for runtimes configured
// by annotations (kata, gVisor); berth's own io.kubernetes.cri.* keys are kept. Built-in handlers take it as it is.
func (s *RuntimeServer) fitSpecToHandler(spec *specs.Spec, handler string, annotations map[string]string) {
	h, err := s.runtimeHandler(handler)
	if err != nil || h == nil {
		return
	}
	spec.Version = ociruntime.FitVersion(spec.Version, h.SpecVersion)
	if len(h.PodAnnotations) == 0 {
		return
	}
	for k, v := range annotations {
		if _, ours := spec.Annotations[k]; ours || !matchAnnotation(h.PodAnnotations, k) {
			continue
		}
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[k] = v
	}
}

func matchAnnotation(patterns []string, key string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(key, prefix) || p == key {
			return true
		}
	}
	return false
}
