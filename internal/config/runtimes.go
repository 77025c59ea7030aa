package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// RuntimeConfig is a RuntimeClass handler: an OCI runtime binary with runc's command line (crun, runsc,
// kata-runtime, runc), run by the pod's monitor instead of libcontainer.
type RuntimeConfig struct {
	Binary string `toml:"binary"`         // absolute path of the executable
	Root   string `toml:"root,omitempty"` // the runtime's --root; default <state_dir>/runtimes/<name>/root
	// SystemdCgroup passes --systemd-cgroup. Unset follows the resolved cgroup_driver; set, it must agree with it:
	// the pod cgroups and the specs' cgroupsPath are made for that driver.
	SystemdCgroup *bool `toml:"systemd_cgroup,omitempty"`
	// ExtraArgs are global options given before each command (e.g. "--debug", "--platform=ptrace").
	ExtraArgs []string `toml:"extra_args,omitempty"`
	// PodAnnotations are the pod annotations copied into each container's OCI spec (runtimes configured by
	// annotations: io.katacontainers.*, dev.gvisor.*): exact keys, or prefixes ending in "*".
	PodAnnotations []string `toml:"pod_annotations,omitempty"`
}

// RuntimeRoot is the handler's --root.
func (c *Config) RuntimeRoot(name string) string {
	if r := c.Runtimes[name].Root; r != "" {
		return r
	}
	return filepath.Join(c.StateDir, "runtimes", name, "root")
}

// RuntimeRecords is where berth keeps its own records of the handler's containers.
func (c *Config) RuntimeRecords(name string) string {
	return filepath.Join(c.StateDir, "runtimes", name, "containers")
}

// handlerName is what Kubernetes accepts as a RuntimeClass handler: a DNS label.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// reservedArgs are the global options berth sets itself on every call.
var reservedArgs = []string{"--root", "--log", "--log-format", "--systemd-cgroup"}

func (v *validator) runtime(name string, r RuntimeConfig) {
	key := func(k string) toml.Key { return toml.Key{"runtimes", name, k} }
	switch {
	case name == "runc":
		v.fail(toml.Key{"runtimes", name}, -1, "the handler name runc is berth's own (libcontainer); name the runc binary's handler otherwise")
	case !handlerName.MatchString(name):
		v.fail(toml.Key{"runtimes", name}, -1, "%q is not a RuntimeClass handler name (a DNS label: lower-case letters, digits and '-', at most 63)", name)
	}
	if r.Binary == "" {
		v.fail(key("binary"), -1, "empty")
	} else if !filepath.IsAbs(r.Binary) {
		v.fail(key("binary"), -1, "%q is not an absolute path", r.Binary)
	} else if st, err := os.Stat(r.Binary); err != nil {
		v.fail(key("binary"), -1, "%v", err)
	} else if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		v.fail(key("binary"), -1, "%q is not an executable file", r.Binary)
	}
	if r.Root != "" {
		v.absPath(key("root"), -1, r.Root)
	}
	for i, a := range r.ExtraArgs {
		opt, _, _ := strings.Cut(a, "=")
		switch {
		case !strings.HasPrefix(a, "-"):
			v.fail(key("extra_args"), i, "%q is not an option: commands and their arguments are berth's", a)
		case slices.Contains(reservedArgs, opt):
			v.fail(key("extra_args"), i, "%s is set by berth", opt)
		}
	}
	for i, p := range r.PodAnnotations {
		if prefix, _ := strings.CutSuffix(p, "*"); prefix == "" || strings.Contains(prefix, "*") {
			v.fail(key("pod_annotations"), i, "%q is not an annotation key or a prefix ending in *", p)
		}
	}
}
