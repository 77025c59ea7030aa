package cri

import (
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/specgen"
)

// Every client string that becomes a path, a mount target, a cgroup name, a hostname, a sysctl, a CNI argument or a
// resolv.conf line is checked here, before anything is made, with InvalidArgument naming the field. Annotations and
// labels only go into annotations and records, so anything goes there.

// maxNameLen bounds metadata names, namespaces and uids (a DNS subdomain is at most 253 bytes).
const maxNameLen = 253

// validName checks a metadata name, namespace or uid: they become CNI arguments (K8S_POD_NAME=…;…), log and
// metric labels and name-reservation keys, and tools join them into paths, so no separators of any of those.
func validName(field, v string) error {
	switch {
	case v == "":
		return errdefs.InvalidArgument(field, "must be set")
	case len(v) > maxNameLen:
		return errdefs.InvalidArgument(field, "%d bytes, more than %d", len(v), maxNameLen)
	case v == "." || v == ".." || strings.Contains(v, ".."):
		return errdefs.InvalidArgument(field, "%q must not contain \"..\"", v)
	case strings.ContainsAny(v, "/;=,\\"):
		return errdefs.InvalidArgument(field, "%q must not contain '/', ';', '=', ',' or '\\'", v)
	case strings.IndexFunc(v, badChar) >= 0:
		return errdefs.InvalidArgument(field, "%q must not contain spaces or control characters", v)
	}
	return nil
}

// badChar is a character no path, resolv.conf word or name may hold: NUL, newline, any space or control.
func badChar(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}

// hostnameLabel is an RFC 1123 label; upper case is allowed, as a node's hostname may have it.
var hostnameLabel = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$`)

// maxHostname is HOST_NAME_MAX: sethostname(2) refuses more.
const maxHostname = 64

func validHostname(field, h string) error {
	if len(h) > maxHostname {
		return errdefs.InvalidArgument(field, "%q is longer than %d bytes", h, maxHostname)
	}
	for _, l := range strings.Split(h, ".") {
		if !hostnameLabel.MatchString(l) {
			return errdefs.InvalidArgument(field, "%q is not an RFC 1123 hostname", h)
		}
	}
	return nil
}

// validAbsPath checks a path the client names on the host or in the container: absolute, no NUL or control
// characters, no ".." component (a clean path cannot climb out of where it is joined). Trailing and doubled
// slashes are allowed: the kubelet passes mountPath as the user wrote it, and the spec cleans it.
func validAbsPath(field, p string) error {
	switch {
	case !path.IsAbs(p):
		return errdefs.InvalidArgument(field, "%q is not absolute", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return errdefs.InvalidArgument(field, "%q holds a control character", p)
	case hasDotDot(p):
		return errdefs.InvalidArgument(field, "%q has a \"..\" component", p)
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// validRelPath checks a path the client names below a directory berth joins it to (log_path, image_sub_path).
func validRelPath(field, p string) error {
	switch {
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return errdefs.InvalidArgument(field, "%q holds a control character", p)
	case filepath.IsAbs(p):
		return errdefs.InvalidArgument(field, "%q must be relative", p)
	case !filepath.IsLocal(p):
		return errdefs.InvalidArgument(field, "%q leaves its directory", p)
	}
	return nil
}

// validWord checks a resolv.conf search domain or option: one word, or it would forge other lines.
func validWord(field, v string) error {
	if v == "" || strings.IndexFunc(v, badChar) >= 0 {
		return errdefs.InvalidArgument(field, "%q must be one word without spaces or control characters", v)
	}
	return nil
}

func validatePodConfig(cfg *runtimeapi.PodSandboxConfig) error {
	if cfg == nil {
		return errdefs.InvalidArgument("config", "missing")
	}
	md := cfg.GetMetadata()
	for _, f := range []struct{ field, v string }{
		{"config.metadata.name", md.GetName()}, {"config.metadata.namespace", md.GetNamespace()}, {"config.metadata.uid", md.GetUid()},
	} {
		if err := validName(f.field, f.v); err != nil {
			return err
		}
	}
	if h := cfg.GetHostname(); h != "" {
		if err := validHostname("config.hostname", h); err != nil {
			return err
		}
	}
	if d := cfg.GetLogDirectory(); d != "" {
		if err := validAbsPath("config.log_directory", d); err != nil {
			return err
		}
	}
	dns := cfg.GetDnsConfig()
	for i, s := range dns.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return errdefs.InvalidArgument(fmt.Sprintf("config.dns_config.servers[%d]", i), "%q is not an IP address", s)
		}
	}
	for i, s := range dns.GetSearches() {
		if err := validWord(fmt.Sprintf("config.dns_config.searches[%d]", i), s); err != nil {
			return err
		}
	}
	for i, s := range dns.GetOptions() {
		if err := validWord(fmt.Sprintf("config.dns_config.options[%d]", i), s); err != nil {
			return err
		}
	}
	for i, p := range cfg.GetPortMappings() {
		if ip := p.GetHostIp(); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return errdefs.InvalidArgument(fmt.Sprintf("config.port_mappings[%d].host_ip", i), "%q is not an IP address", ip)
			}
		}
	}
	if c := cfg.GetLinux().GetCgroupParent(); c != "" {
		if strings.IndexFunc(c, badChar) >= 0 || hasDotDot(c) {
			return errdefs.InvalidArgument("config.linux.cgroup_parent", "%q must have no \"..\" component, spaces or control characters", c)
		}
	}
	for k, v := range cfg.GetLinux().GetSysctls() {
		// Values may hold spaces (net.ipv4.ip_local_port_range); a newline or NUL would end the write early.
		if strings.ContainsAny(k, "\x00\n") || strings.ContainsAny(v, "\x00\n") {
			return errdefs.InvalidArgument(fmt.Sprintf("config.linux.sysctls[%q]", k), "key or value holds a NUL or newline")
		}
	}
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if err := specgen.ValidateSysctls(cfg.GetLinux().GetSysctls(), ns.GetNetwork() == runtimeapi.NamespaceMode_NODE,
		ns.GetIpc() == runtimeapi.NamespaceMode_NODE); err != nil {
		return err
	}
	return specgen.ValidateUserNamespace(userNamespace(ns.GetUsernsOptions()))
}

// validateContainerConfig checks a container config against its pod's before anything is acquired or made.
func validateContainerConfig(pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) error {
	if err := validName("config.metadata.name", cfg.GetMetadata().GetName()); err != nil {
		return err
	}
	if p := cfg.GetLogPath(); p != "" {
		if err := validRelPath("config.log_path", p); err != nil {
			return err
		}
	}
	if w := cfg.GetWorkingDir(); w != "" {
		if err := validAbsPath("config.working_dir", w); err != nil {
			return err
		}
	}
	for i, m := range cfg.GetMounts() {
		field := fmt.Sprintf("config.mounts[%d]", i)
		if err := validAbsPath(field+".container_path", m.GetContainerPath()); err != nil {
			return err
		}
		if h := m.GetHostPath(); h != "" {
			if err := validAbsPath(field+".host_path", h); err != nil {
				return err
			}
		}
		if s := m.GetImageSubPath(); s != "" {
			if err := validRelPath(field+".image_sub_path", s); err != nil {
				return err
			}
		}
	}
	if err := validateCDIDevices(cfg); err != nil {
		return err
	}
	for i, d := range cfg.GetDevices() {
		field := fmt.Sprintf("config.devices[%d]", i)
		if err := validAbsPath(field+".host_path", d.GetHostPath()); err != nil {
			return err
		}
		if c := d.GetContainerPath(); c != "" {
			if err := validAbsPath(field+".container_path", c); err != nil {
				return err
			}
		}
		if p := d.GetPermissions(); strings.Trim(p, "rwm") != "" {
			return errdefs.InvalidArgument(field+".permissions", "%q: want some of r, w, m", p)
		}
	}
	sc := cfg.GetLinux().GetSecurityContext()
	for _, f := range []struct{ field, v string }{
		{"config.linux.security_context.seccomp.localhost_ref", sc.GetSeccomp().GetLocalhostRef()},
		{"config.linux.security_context.apparmor.localhost_ref", sc.GetApparmor().GetLocalhostRef()},
		{"config.linux.security_context.seccomp_profile_path", sc.GetSeccompProfilePath()},
		{"config.linux.security_context.apparmor_profile", sc.GetApparmorProfile()},
	} {
		if strings.IndexFunc(f.v, badChar) >= 0 {
			return errdefs.InvalidArgument(f.field, "%q holds spaces or control characters", f.v)
		}
	}
	return validateContainerNamespaces(pod, sc.GetNamespaceOptions())
}

// validateContainerNamespaces refuses a container that asks for a host namespace its pod did not: a pod with its
// own network, PID or IPC namespace is no permission to run one of its containers in the host's.
func validateContainerNamespaces(pod *runtimeapi.PodSandboxConfig, ns *runtimeapi.NamespaceOption) error {
	if ns == nil {
		return nil // the pod's are inherited
	}
	podNS := pod.GetLinux().GetSecurityContext().GetNamespaceOptions()
	const field = "config.linux.security_context.namespace_options"
	for _, k := range []struct {
		name     string
		ctr, pod runtimeapi.NamespaceMode
	}{
		{"network", ns.GetNetwork(), podNS.GetNetwork()},
		{"pid", ns.GetPid(), podNS.GetPid()},
		{"ipc", ns.GetIpc(), podNS.GetIpc()},
	} {
		if k.ctr == runtimeapi.NamespaceMode_NODE && k.pod != runtimeapi.NamespaceMode_NODE {
			return errdefs.InvalidArgument(field+"."+k.name, "NODE, but the pod's is %s: a container may not join a host namespace its pod did not ask for", k.pod)
		}
	}
	return nil
}
