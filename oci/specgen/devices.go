package specgen

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// devices returns the device nodes to create and the device cgroup rules: deny everything (runc adds its
// default devices: null, zero, full, random, urandom, tty, ptmx), then allow each CRI device with its
// permissions. A privileged container also gets every host device and access to all devices.
func devices(in *SpecInput, sc *LinuxContainerSecurityContext) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for i, d := range in.Config.Devices {
		field := fmt.Sprintf("devices[%d]", i)
		if d.Permissions == "" || strings.Trim(d.Permissions, "rwm") != "" {
			return nil, nil, errdefs.InvalidArgument(field+".permissions", "%q is not a combination of r, w and m", d.Permissions)
		}
		if d.HostPath == "" {
			return nil, nil, errdefs.InvalidArgument(field+".host_path", "empty")
		}
		cp := d.ContainerPath
		if cp == "" {
			cp = d.HostPath
		}
		if !path.IsAbs(cp) {
			return nil, nil, errdefs.InvalidArgument(field+".container_path", "%q is not absolute", cp)
		}
		found, err := in.Host.FS.Devices(d.HostPath, cp)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(field+".host_path", "%v", err)
		}
		for _, dev := range found {
			devs = append(devs, dev)
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: ptr(dev.Major), Minor: ptr(dev.Minor), Access: d.Permissions})
		}
	}
	if sc.Privileged {
		host, err := in.Host.FS.Devices("/dev", "")
		if err != nil {
			return nil, nil, fmt.Errorf("list host devices: %w", err)
		}
		for _, dev := range host {
			if !slices.ContainsFunc(devs, func(d specs.LinuxDevice) bool { return d.Path == dev.Path }) {
				devs = append(devs, dev)
			}
		}
		rules = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	return devs, rules, nil
}

func ptr[T any](v T) *T { return &v }
