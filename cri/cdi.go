package cri

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/cdi"
)

// CDIDevices applies CDI devices to a container's spec (oci/cdi.Registry).
type CDIDevices interface {
	// Inject edits spec for the named devices: ErrNotFound for a device no spec defines, ErrFailedPrecondition for
	// edits the host cannot satisfy.
	Inject(spec *specs.Spec, devices []string) error
}

// cdiDevices is the CDI devices a container asks for: its cdi_devices, then those its cdi.k8s.io/* annotations list
// (comma separated; how device plugins asked before the CRI field, which containerd and CRI-O still honour), in key
// order, each device once.
func cdiDevices(cfg *runtimeapi.ContainerConfig) ([]string, error) {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for i, d := range cfg.GetCDIDevices() {
		if err := cdi.ValidName(d.GetName()); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("config.cdi_devices[%d].name", i), "%v", err)
		}
		add(d.GetName())
	}
	ann := cfg.GetAnnotations()
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		if !strings.HasPrefix(k, cdi.AnnotationPrefix) {
			continue
		}
		for n := range strings.SplitSeq(ann[k], ",") {
			if err := cdi.ValidName(n); err != nil {
				return nil, errdefs.InvalidArgument(fmt.Sprintf("config.annotations[%q]", k), "%v", err)
			}
			add(n)
		}
	}
	return names, nil
}

// validateCDIDevices checks the names before anything is made.
func validateCDIDevices(cfg *runtimeapi.ContainerConfig) error {
	_, err := cdiDevices(cfg)
	return err
}

// injectCDI applies the container's CDI devices to its spec, after the spec is built. With CDI off, a container
// that asks for devices is refused rather than run without them.
func (s *RuntimeServer) injectCDI(ctx context.Context, spec *specs.Spec, cfg *runtimeapi.ContainerConfig) error {
	names, err := cdiDevices(cfg)
	if err != nil || len(names) == 0 {
		return err
	}
	if s.opts.CDI == nil {
		return errdefs.FailedPrecondition("CDI devices %q requested, but CDI is off ([cdi] enabled = false)", names)
	}
	if err := s.opts.CDI.Inject(spec, names); err != nil {
		return err
	}
	Logger(ctx).Debug("CDI devices injected", "devices", names)
	return nil
}
