package runc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// libcontainerConfig converts the spec. specconv resolves relative paths against the process's working
// directory, which a monitor serving several bundles cannot change safely: the paths are made absolute
// here instead.
func libcontainerConfig(id, bundle string, spec *specs.Spec, systemd bool) (*configs.Config, error) {
	if spec == nil || spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errdefs.InvalidArgument("spec.process.args", "container %s has no process to run", id)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, errdefs.InvalidArgument("spec.root.path", "container %s has no root", id)
	}
	if !filepath.IsAbs(bundle) {
		return nil, errdefs.InvalidArgument("bundle", "%q is not an absolute path", bundle)
	}
	s := *spec
	root := *spec.Root
	if !filepath.IsAbs(root.Path) {
		root.Path = filepath.Join(bundle, root.Path)
	}
	s.Root = &root
	s.Mounts = slices.Clone(spec.Mounts)
	for i, m := range s.Mounts {
		if isBind(m) && !filepath.IsAbs(m.Source) {
			s.Mounts[i].Source = filepath.Join(bundle, m.Source)
		}
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       id,
		UseSystemdCgroup: systemd,
		Spec:             &s,
	})
	if err != nil {
		return nil, errdefs.InvalidArgument("spec", "container %s: %v", id, err)
	}
	for i, l := range cfg.Labels {
		if strings.HasPrefix(l, "bundle=") {
			cfg.Labels[i] = "bundle=" + bundle
		}
	}
	// Rlimits and the AppArmor profile go in the config, not only in the init process, so that exec
	// processes get them too.
	if cfg.Rlimits, err = rlimits(spec.Process.Rlimits); err != nil {
		return nil, err
	}
	cfg.AppArmorProfile = spec.Process.ApparmorProfile
	return cfg, nil
}

func isBind(m specs.Mount) bool {
	return slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// newProcess is the container's init process; the rest of spec.process is in the libcontainer config.
func newProcess(sp *specs.Process) *libcontainer.Process {
	p := &libcontainer.Process{
		Args:             sp.Args,
		Env:              sp.Env,
		Cwd:              sp.Cwd,
		UID:              int(sp.User.UID),
		GID:              int(sp.User.GID),
		AdditionalGroups: gids(sp.User.AdditionalGids),
	}
	if sp.ConsoleSize != nil {
		p.ConsoleWidth, p.ConsoleHeight = uint16(sp.ConsoleSize.Width), uint16(sp.ConsoleSize.Height)
	}
	return p
}

func gids(in []uint32) []int {
	out := make([]int, len(in))
	for i, g := range in {
		out[i] = int(g)
	}
	return out
}

// setStdio sets only the non-nil files: a nil *os.File stored in an io.Reader would not read as nil.
func setStdio(p *libcontainer.Process, stdin, stdout, stderr *os.File) {
	if stdin != nil {
		p.Stdin = stdin
	}
	if stdout != nil {
		p.Stdout = stdout
	}
	if stderr != nil {
		p.Stderr = stderr
	}
}

var rlimitTypes = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

func rlimits(in []specs.POSIXRlimit) ([]configs.Rlimit, error) {
	var out []configs.Rlimit
	for i, r := range in {
		t, ok := rlimitTypes[r.Type]
		if !ok {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("spec.process.rlimits[%d].type", i), "unknown rlimit %q", r.Type)
		}
		out = append(out, configs.Rlimit{Type: t, Hard: r.Hard, Soft: r.Soft})
	}
	return out, nil
}
