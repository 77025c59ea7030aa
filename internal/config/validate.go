package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/berthcri/berth/cni/conftemplate"
	"github.com/berthcri/berth/internal/errdefs"
)

// maxSocketPath is the longest unix socket path: sun_path holds 108 bytes including the trailing NUL.
const maxSocketPath = 107

// fieldError is one failed rule. key is the TOML key, so that Load can name the file that set it.
type fieldError struct {
	key    toml.Key
	index  int // element of an array key, or -1
	reason string
}

func (e *fieldError) Error() string {
	name := e.key.String()
	if e.index >= 0 {
		name += "[" + strconv.Itoa(e.index) + "]"
	}
	return fmt.Sprintf("%s: %s: %v", name, e.reason, errdefs.ErrInvalidArgument)
}

func (e *fieldError) Unwrap() error { return errdefs.ErrInvalidArgument }

// validator collects every failed rule, so that one start-up reports all of them.
type validator struct{ errs []error }

func (v *validator) fail(key toml.Key, index int, format string, args ...any) {
	v.errs = append(v.errs, &fieldError{key: key, index: index, reason: fmt.Sprintf(format, args...)})
}

func (v *validator) absPath(key toml.Key, index int, p string) {
	if !filepath.IsAbs(p) {
		v.fail(key, index, "%q is not an absolute path", p)
	}
}

func (v *validator) oneOf(key toml.Key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.fail(key, -1, "%q is not one of %s", s, strings.Join(allowed, ", "))
	}
}

func (v *validator) positive(key toml.Key, d Duration) {
	if d.Duration <= 0 {
		v.fail(key, -1, "%s is not > 0", d)
	}
}

// atLeast: a cap below min would refuse ordinary images (manifests and configs run to kilobytes, the smallest images
// unpack to hundreds of KiB), so it is a typo rather than a choice.
func (v *validator) atLeast(key toml.Key, s, min Size) {
	if s < min {
		v.fail(key, -1, "%s is less than %s", s, min)
	}
}

func (v *validator) readable(key toml.Key, path string) {
	f, err := os.Open(path)
	if err != nil {
		v.fail(key, -1, "not readable: %v", err)
		return
	}
	f.Close()
}

// template checks that a CNI conf template is an absolute path to a template that parses and uses only what
// conftemplate runs: a broken one would only show when the kubelet first hands down the pod CIDR.
func (v *validator) template(key toml.Key, path string) {
	if !filepath.IsAbs(path) {
		v.absPath(key, -1, path)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.fail(key, -1, "not readable: %v", err)
		return
	}
	if _, err := conftemplate.Parse(filepath.Base(path), string(data)); err != nil {
		v.fail(key, -1, "%v", err)
	}
}

// Validate checks every rule and returns all failures joined; each names its key and wraps
// errdefs.ErrInvalidArgument.
func (c *Config) Validate() error {
	var v validator
	v.absPath(toml.Key{"root_dir"}, -1, c.RootDir)
	v.absPath(toml.Key{"state_dir"}, -1, c.StateDir)
	v.absPath(toml.Key{"listen"}, -1, c.Listen)
	if len(c.Listen) > maxSocketPath {
		v.fail(toml.Key{"listen"}, -1, "%q is longer than %d bytes, the limit of a unix socket path", c.Listen, maxSocketPath)
	}
	v.oneOf(toml.Key{"cgroup_driver"}, c.CgroupDriver, "auto", "cgroupfs", "systemd")
	if strings.ContainsAny(c.UsernsGroup, ":\n\t /") {
		v.fail(toml.Key{"userns_group"}, -1, "%q is not a group name", c.UsernsGroup)
	}
	if c.MinOOMScoreAdj < -1000 || c.MinOOMScoreAdj > 1000 {
		v.fail(toml.Key{"min_oom_score_adj"}, -1, "%d is outside -1000..1000", c.MinOOMScoreAdj)
	}
	if c.SandboxImage == "" {
		v.fail(toml.Key{"sandbox_image"}, -1, "empty")
	}
	for i, img := range c.PinnedImages {
		if img == "" {
			v.fail(toml.Key{"pinned_images"}, i, "empty")
		}
	}
	v.positive(toml.Key{"shutdown_timeout"}, c.ShutdownTimeout)

	v.oneOf(toml.Key{"log", "level"}, c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf(toml.Key{"log", "format"}, c.Log.Format, "text", "json")

	v.absPath(toml.Key{"cni", "conf_dir"}, -1, c.CNI.ConfDir)
	if len(c.CNI.BinDirs) == 0 {
		v.fail(toml.Key{"cni", "bin_dirs"}, -1, "empty")
	}
	for i, d := range c.CNI.BinDirs {
		v.absPath(toml.Key{"cni", "bin_dirs"}, i, d)
	}
	v.positive(toml.Key{"cni", "setup_timeout"}, c.CNI.SetupTimeout)
	if c.CNI.ConfTemplate != "" {
		v.template(toml.Key{"cni", "conf_template"}, c.CNI.ConfTemplate)
	}

	if c.Registry.MaxConcurrentDownloads < 1 {
		v.fail(toml.Key{"registry", "max_concurrent_downloads"}, -1, "%d is not >= 1", c.Registry.MaxConcurrentDownloads)
	}
	v.positive(toml.Key{"registry", "pull_progress_timeout"}, c.Registry.PullProgressTimeout)
	v.atLeast(toml.Key{"registry", "max_manifest_size"}, c.Registry.MaxManifestSize, 4<<10)
	v.atLeast(toml.Key{"registry", "max_config_size"}, c.Registry.MaxConfigSize, 4<<10)
	v.atLeast(toml.Key{"registry", "max_unpacked_size"}, c.Registry.MaxUnpackedSize, 1<<20)
	if c.Registry.ConfigPath != "" {
		for i, dir := range strings.Split(c.Registry.ConfigPath, ":") {
			v.absPath(toml.Key{"registry", "config_path"}, i, dir)
		}
	}
	if c.Registry.DockerConfig != "" {
		v.absPath(toml.Key{"registry", "docker_config"}, -1, c.Registry.DockerConfig)
		v.readable(toml.Key{"registry", "docker_config"}, c.Registry.DockerConfig)
	}
	for _, host := range slices.Sorted(maps.Keys(c.Registry.Hosts)) {
		v.registryHost(host, c.Registry.Hosts[host])
	}

	v.stream(c.Stream)
	v.metrics(c.Metrics)
	v.cdi(c.CDI)
	for _, name := range slices.Sorted(maps.Keys(c.Runtimes)) {
		v.runtime(name, c.Runtimes[name])
	}
	v.nri(c.NRI)
	return errors.Join(v.errs...)
}

func (v *validator) registryHost(host string, h RegistryHost) {
	key := func(k string) toml.Key { return toml.Key{"registry", "hosts", host, k} }
	switch {
	case host == DefaultHost:
	case strings.Contains(host, "://"):
		v.fail(toml.Key{"registry", "hosts", host}, -1, "a registry host is host[:port], not a URL")
	default:
		if err := checkHostPort(host, false); err != nil {
			v.fail(toml.Key{"registry", "hosts", host}, -1, "%v (want host[:port] or %q)", err, DefaultHost)
		}
	}
	for i, m := range h.Mirrors {
		u, err := url.Parse(m)
		switch {
		case err != nil:
			v.fail(key("mirrors"), i, "%q: %v", m, err)
		case u.Scheme != "http" && u.Scheme != "https":
			v.fail(key("mirrors"), i, "%q: scheme must be http or https", m)
		case u.Host == "":
			v.fail(key("mirrors"), i, "%q: no host", m)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			v.fail(key("mirrors"), i, "%q: only scheme, host[:port] and path are allowed", m)
		}
	}
	if h.MirrorsOnly && len(h.Mirrors) == 0 {
		v.fail(key("mirrors_only"), -1, "set without mirrors")
	}
	if h.CAFile != "" {
		v.readable(key("ca_file"), h.CAFile)
	}
	if h.ClientCert != "" {
		v.readable(key("client_cert"), h.ClientCert)
	}
	if h.ClientKey != "" {
		if h.ClientCert == "" {
			v.fail(key("client_key"), -1, "set without client_cert")
		} else {
			v.readable(key("client_key"), h.ClientKey)
		}
	}
	if h.PlainHTTP && (h.SkipVerify || h.ClientCert != "") {
		v.fail(key("plain_http"), -1, "set together with skip_verify or client_cert, which only HTTPS uses")
	}
	if h.Auth != "" {
		if h.Username != "" {
			v.fail(key("auth"), -1, "set together with username; use one of them")
		}
		b, err := base64.StdEncoding.DecodeString(h.Auth)
		if user, _, ok := strings.Cut(string(b), ":"); err != nil || !ok || user == "" {
			v.fail(key("auth"), -1, "not the base64 encoding of \"user:password\"")
		}
	}
	if h.Password != "" && h.Username == "" {
		v.fail(key("password"), -1, "set without username")
	}
}

func (v *validator) stream(s StreamConfig) {
	if err := checkHost(s.Address); err != nil {
		v.fail(toml.Key{"stream", "address"}, -1, "%q: %v", s.Address, err)
	}
	if s.Port < 0 || s.Port > 65535 {
		v.fail(toml.Key{"stream", "port"}, -1, "%d is outside 0..65535", s.Port)
	}
	switch {
	case s.TLSCert != "" && s.TLSKey == "":
		v.fail(toml.Key{"stream", "tls_cert"}, -1, "set without stream.tls_key")
	case s.TLSKey != "" && s.TLSCert == "":
		v.fail(toml.Key{"stream", "tls_key"}, -1, "set without stream.tls_cert")
	case s.TLSCert != "":
		v.readable(toml.Key{"stream", "tls_cert"}, s.TLSCert)
		v.readable(toml.Key{"stream", "tls_key"}, s.TLSKey)
	}
}

func (v *validator) metrics(m MetricsConfig) {
	if m.Address == "" {
		if m.Pprof {
			v.fail(toml.Key{"metrics", "pprof"}, -1, "set without metrics.address")
		}
		return
	}
	if err := checkHostPort(m.Address, true); err != nil {
		v.fail(toml.Key{"metrics", "address"}, -1, "%q: %v (want host:port)", m.Address, err)
	}
}

// cdi checks the spec dirs even when CDI is off, so that turning it on cannot reveal a typo.
func (v *validator) cdi(c CDIConfig) {
	key := toml.Key{"cdi", "spec_dirs"}
	if c.Enabled && len(c.SpecDirs) == 0 {
		v.fail(key, -1, "empty; set cdi.enabled = false to turn CDI off")
	}
	seen := map[string]int{}
	for i, d := range c.SpecDirs {
		v.absPath(key, i, d)
		clean := filepath.Clean(d)
		if j, ok := seen[clean]; ok {
			v.fail(key, i, "%q is already spec_dirs[%d]", d, j)
			continue
		}
		seen[clean] = i
	}
}

// nri checks the NRI keys even when NRI is off, so that turning it on later cannot fail on a typo made now.
func (v *validator) nri(n NRIConfig) {
	v.absPath(toml.Key{"nri", "socket_path"}, -1, n.SocketPath)
	if len(n.SocketPath) > maxSocketPath {
		v.fail(toml.Key{"nri", "socket_path"}, -1, "%q is longer than %d bytes, the limit of a unix socket path", n.SocketPath, maxSocketPath)
	}
	v.absPath(toml.Key{"nri", "plugin_path"}, -1, n.PluginPath)
	v.absPath(toml.Key{"nri", "plugin_config_path"}, -1, n.PluginConfigPath)
	for _, t := range []struct {
		key string
		d   Duration
	}{{"registration_timeout", n.RegistrationTimeout}, {"request_timeout", n.RequestTimeout}} {
		if t.d.Duration <= 0 || t.d.Duration > maxNRITimeout {
			v.fail(toml.Key{"nri", t.key}, -1, "%s is outside (0, %s]", t.d.Duration, maxNRITimeout)
		}
	}
}

// checkHostPort accepts host, host:port or [ipv6]:port; the port is required when needPort. An empty host with a
// port (":9090") means every interface, which only a listen address may use.
func checkHostPort(s string, needPort bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if needPort {
			return err
		}
		return checkHost(s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not in 1..65535", port)
	}
	if host == "" && needPort {
		return nil
	}
	return checkHost(host)
}

// checkHost accepts an IP address or a DNS name.
func checkHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if h == "" || len(h) > 253 {
		return errors.New("not an IP address or DNS name")
	}
	for label := range strings.SplitSeq(h, ".") {
		if !validLabel(label) {
			return fmt.Errorf("DNS label %q is invalid", label)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
