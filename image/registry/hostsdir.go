package registry

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// maxHostsFile bounds a hosts.toml: real ones are a few hundred bytes.
const maxHostsFile = 1 << 20

// portDir is containerd's spelling of host:port in a dir name, "host_port_", which is also valid on Windows.
var portDir = regexp.MustCompile(`^(.+)_([0-9]+)_$`)

// hostsFileEntry is one host of a hosts.toml, or its root: containerd's keys
// (core/remotes/docker/config/hosts.go).
type hostsFileEntry struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`     // a file or a list of files
	Client       any            `toml:"client"` // a file (cert and key), a list of them, or a list of [cert, key]
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"` // a value or a list of values
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

type hostsFile struct {
	Server string `toml:"server"`
	hostsFileEntry
	Host map[string]hostsFileEntry `toml:"host"`
}

// loadHostsDirs reads the certs.d dirs of registry.config_path, a colon-separated list as containerd's: for each
// host the first dir that has it wins.
func loadHostsDirs(paths string) (map[string]hostDir, error) {
	out := map[string]hostDir{}
	if paths == "" {
		return out, nil
	}
	for _, dir := range strings.Split(paths, ":") {
		d, err := loadHostsDir(dir)
		if err != nil {
			return nil, err
		}
		for host, hd := range d {
			if _, ok := out[host]; !ok {
				out[host] = hd
			}
		}
	}
	return out, nil
}

// loadHostsDir reads every host dir of a certs.d directory: <dir>/<host>/hosts.toml, or, without one, docker's
// cert files in <dir>/<host> (*.crt CA bundles, *.cert client certificates with their *.key). A host with a port is
// <host>_<port>_ or <host>:<port>; where both exist <host>_<port>_ wins, as in containerd. A missing dir is none.
func loadHostsDir(dir string) (map[string]hostDir, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry.config_path: %w", err)
	}
	out := map[string]hostDir{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		host, fromPortDir := e.Name(), false
		if m := portDir.FindStringSubmatch(host); m != nil {
			host, fromPortDir = m[1]+":"+m[2], true
		}
		if host != config.DefaultHost {
			if u, err := url.Parse("https://" + host); err != nil || u.Host != host {
				return nil, fmt.Errorf("%s: dir name %q is not a registry host[:port]: %w", dir, e.Name(),
					errdefs.ErrInvalidArgument)
			}
		}
		// Both spellings of one host: the "_port_" dir wins, as in containerd.
		if _, ok := out[host]; ok && !fromPortDir {
			continue
		}
		d, err := loadHostDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[host] = d
	}
	return out, nil
}

func loadHostDir(dir string) (hostDir, error) {
	file := filepath.Join(dir, "hosts.toml")
	b, err := readBounded(file, maxHostsFile)
	if errors.Is(err, os.ErrNotExist) {
		return loadCertFiles(dir)
	}
	if err != nil {
		return hostDir{}, err
	}
	eps, err := parseHostsFile(file, b)
	if err != nil {
		return hostDir{}, err
	}
	return hostDir{source: file, eps: eps}, nil
}

// parseHostsFile reads a hosts.toml: [host."…"] tables in the order they appear, then the root (`server`, or the
// registry itself). Unlike containerd, which logs a bad file and falls back to cert files, an error refuses the
// whole configuration: a mirror silently dropped would send pulls where the operator said not to.
func parseHostsFile(file string, b []byte) ([]Endpoint, error) {
	var f hostsFile
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", file, err, errdefs.ErrInvalidArgument)
	}
	for _, k := range md.Undecoded() {
		return nil, fmt.Errorf("%s: %s: unknown key: %w", file, k, errdefs.ErrInvalidArgument)
	}
	var order []string
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == "host" {
			order = append(order, k[1])
		}
	}
	dir := filepath.Dir(file)
	var eps []Endpoint
	for _, name := range order {
		ep, err := parseHostEntry(dir, name, f.Host[name])
		if err != nil {
			return nil, fmt.Errorf("%s: host.%q: %w", file, name, err)
		}
		ep.Source = file
		eps = append(eps, ep)
	}
	ep, err := parseHostEntry(dir, f.Server, f.hostsFileEntry)
	if err != nil {
		if f.Server == "" {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return nil, fmt.Errorf("%s: server %q: %w", file, f.Server, err)
	}
	ep.Source = file
	return append(eps, ep), nil
}

// parseHostEntry reads one host's settings; an empty server leaves Host empty (the registry itself).
func parseHostEntry(dir, server string, e hostsFileEntry) (Endpoint, error) {
	ep := Endpoint{Capabilities: capAll}
	if server != "" {
		if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
			server = "https://" + server
		}
		u, err := url.Parse(server)
		if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return Endpoint{}, fmt.Errorf("want http(s)://host[:port][/path]: %w", errdefs.ErrInvalidArgument)
		}
		ep.Scheme, ep.Host, ep.Path = u.Scheme, u.Host, apiRoot(u.Path, e.OverridePath)
	} else if e.OverridePath {
		return Endpoint{}, fmt.Errorf("override_path: set without server: %w", errdefs.ErrInvalidArgument)
	}
	if len(e.Capabilities) > 0 {
		ep.Capabilities = 0
		for _, c := range e.Capabilities {
			switch strings.ToLower(c) {
			case "pull":
				ep.Capabilities |= CapPull
			case "resolve":
				ep.Capabilities |= CapResolve
			case "push":
				ep.Capabilities |= CapPush
			default:
				return Endpoint{}, fmt.Errorf("capabilities: %q is not one of pull, resolve, push: %w", c,
					errdefs.ErrInvalidArgument)
			}
		}
	}
	if e.SkipVerify != nil {
		ep.TLS.SkipVerify = *e.SkipVerify
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var err error
	if ep.TLS.CAFiles, err = stringOrList("ca", e.CA, abs); err != nil {
		return Endpoint{}, err
	}
	switch c := e.Client.(type) {
	case nil:
	case string:
		ep.TLS.Clients = [][2]string{{abs(c), ""}}
	case []any:
		for _, item := range c {
			switch p := item.(type) {
			case string:
				ep.TLS.Clients = append(ep.TLS.Clients, [2]string{abs(p), ""})
			case []any:
				pair, err := stringOrList("client", p, abs)
				if err != nil || len(pair) != 2 {
					return Endpoint{}, fmt.Errorf("client: %v is not a [cert, key] pair: %w", p, errdefs.ErrInvalidArgument)
				}
				ep.TLS.Clients = append(ep.TLS.Clients, [2]string{pair[0], pair[1]})
			default:
				return Endpoint{}, fmt.Errorf("client: %v is not a file or a [cert, key] pair: %w", p,
					errdefs.ErrInvalidArgument)
			}
		}
	default:
		return Endpoint{}, fmt.Errorf("client: want a file, a list of files or of [cert, key] pairs: %w",
			errdefs.ErrInvalidArgument)
	}
	if len(e.Header) > 0 {
		ep.Header = http.Header{}
		for k, v := range e.Header {
			vals, err := stringOrList("header."+k, v, nil)
			if err != nil {
				return Endpoint{}, err
			}
			ep.Header[http.CanonicalHeaderKey(k)] = vals
		}
	}
	if e.DialTimeout != "" {
		d, err := time.ParseDuration(e.DialTimeout)
		if err != nil || d <= 0 {
			return Endpoint{}, fmt.Errorf("dial_timeout: %q is not a duration > 0: %w", e.DialTimeout,
				errdefs.ErrInvalidArgument)
		}
		ep.TLS.DialTimeout = d
	}
	if ep.Scheme == "http" && (ep.TLS.SkipVerify || len(ep.TLS.Clients) > 0) {
		return Endpoint{}, fmt.Errorf("skip_verify or client set for an http:// server, which does not use TLS: %w",
			errdefs.ErrInvalidArgument)
	}
	return ep, nil
}

// stringOrList reads a TOML value that is a string or a list of strings, mapping each through f when not nil.
func stringOrList(key string, v any, f func(string) string) ([]string, error) {
	if f == nil {
		f = func(s string) string { return s }
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{f(v)}, nil
	case []any:
		out := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not a string: %w", key, item, errdefs.ErrInvalidArgument)
			}
			out[i] = f(s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: want a string or a list of strings: %w", key, errdefs.ErrInvalidArgument)
}

// loadCertFiles reads docker's layout (/etc/docker/certs.d/<host>): *.crt are CA bundles, *.cert client
// certificates whose key is the *.key of the same name (or inside the *.cert when there is none).
func loadCertFiles(dir string) (hostDir, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return hostDir{}, fmt.Errorf("registry.config_path: %w", err)
	}
	ep := Endpoint{Capabilities: capAll, Source: dir}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		switch {
		case strings.HasSuffix(name, ".crt"):
			ep.TLS.CAFiles = append(ep.TLS.CAFiles, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".cert"):
			pair := [2]string{filepath.Join(dir, name), ""}
			key := filepath.Join(dir, strings.TrimSuffix(name, ".cert")+".key")
			if _, err := os.Stat(key); err == nil {
				pair[1] = key
			} else if !errors.Is(err, os.ErrNotExist) {
				return hostDir{}, fmt.Errorf("registry.config_path: %w", err)
			}
			ep.TLS.Clients = append(ep.TLS.Clients, pair)
		}
	}
	return hostDir{source: dir, eps: []Endpoint{ep}}, nil
}

// readBounded reads a config file of at most max bytes.
func readBounded(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a config file may have: %w", file, fi.Size(), max,
			errdefs.ErrInvalidArgument)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b, nil
}
