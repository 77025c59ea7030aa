package registry

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// dockerHub is the name references use for Docker Hub, and dockerHubHost the host that serves its API.
const (
	dockerHub     = "docker.io"
	dockerHubHost = "registry-1.docker.io"
)

// Capabilities are what an endpoint may be used for, as containerd's hosts.toml `capabilities`.
type Capabilities uint8

const (
	CapPull    Capabilities = 1 << iota // fetch manifests by digest and blobs
	CapResolve                          // resolve a tag to a digest
	CapPush                             // berth never pushes; kept so that `berthd config endpoints` shows it
	capAll     = CapPull | CapResolve | CapPush
)

func (c Capabilities) String() string {
	var s []string
	for _, n := range []struct {
		c    Capabilities
		name string
	}{{CapPull, "pull"}, {CapResolve, "resolve"}, {CapPush, "push"}} {
		if c&n.c != 0 {
			s = append(s, n.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// TLS is how an endpoint's server certificate is checked and which client certificates it is shown.
type TLS struct {
	CAFiles    []string    // PEM bundles trusted on top of the system roots
	SkipVerify bool        // no verification of the server's chain and name
	Clients    [][2]string // certificate file, key file ("" when the key is in the certificate file)
	// DialTimeout bounds one TCP connect; 0 is the default (30s).
	DialTimeout time.Duration
}

func (t TLS) configured() bool { return len(t.CAFiles) > 0 || t.SkipVerify || len(t.Clients) > 0 }

// key identifies the HTTP transport that these settings need.
func (t TLS) key() string {
	return fmt.Sprintf("%q|%t|%q|%s", t.CAFiles, t.SkipVerify, t.Clients, t.DialTimeout)
}

// Endpoint is one place a repository can be fetched from: a mirror or the registry host itself.
type Endpoint struct {
	// Host is host[:port] as it is dialled and put in URLs.
	Host string
	// Scheme is "https" or "http".
	Scheme string
	// Path is the API root that replaces "/v2" in request paths: "/v2", or a mirror's own path.
	Path string
	// Mirror is true for a mirror of the reference's registry.
	Mirror       bool
	Capabilities Capabilities
	TLS          TLS
	// Header is sent with every request to Host.
	Header http.Header
	// Source says where the endpoint is configured: a hosts.toml (or certs dir), "berth.toml", or "" (built in).
	Source string

	// creds is berth.toml's entry whose credentials Host gets: the mirror's own, or the registry's for itself.
	creds config.RegistryHost
}

// Hosts is the registry host configuration: berth.toml's [registry.hosts] and the certs.d dir, loaded and checked.
type Hosts struct {
	toml map[string]config.RegistryHost
	dir  map[string]hostDir // by host[:port] or config.DefaultHost
}

// hostDir is what a certs.d host dir configures: its endpoints in order (hosts then server). The last one's Host
// is "" when hosts.toml has no `server` (or the dir holds only docker-style cert files): the registry itself.
type hostDir struct {
	source string
	eps    []Endpoint
}

// Endpoints returns, in the order to try them, where the repositories of registry domain (as it appears in a
// normalised reference, e.g. "docker.io", "127.0.0.1:5000") are fetched from. The configuration is, first found:
// the certs.d dir of domain, berth.toml's entry of domain, the certs.d _default dir, berth.toml's _default entry.
// A berth.toml entry gives its mirrors in order (the repository path is kept), then the registry itself unless
// mirrors_only is set, so that a mirrors_only host is never dialled nor even looked up in DNS. A hosts.toml gives
// its [host."…"] tables in file order, then `server` (the registry itself when `server` is not set).
func (h *Hosts) Endpoints(domain string) ([]Endpoint, error) {
	if d, ok := h.dir[domain]; ok {
		return h.fromDir(d, domain), nil
	}
	if entry, ok := h.toml[domain]; ok {
		return h.fromTOML(entry, domain)
	}
	if d, ok := h.dir[config.DefaultHost]; ok {
		return h.fromDir(d, domain), nil
	}
	if entry, ok := h.toml[config.DefaultHost]; ok {
		return h.fromTOML(entry, domain)
	}
	return []Endpoint{h.upstream(domain, config.RegistryHost{}, "")}, nil
}

// upstream is the registry's own endpoint: https, or http for plain_http and for loopback hosts without TLS
// settings (as Docker and containerd do).
func (h *Hosts) upstream(domain string, entry config.RegistryHost, source string) Endpoint {
	host := domain
	if domain == dockerHub {
		host = dockerHubHost
	}
	ep := Endpoint{Host: host, Scheme: "https", Path: "/v2", Capabilities: capAll, TLS: tomlTLS(entry),
		Source: source, creds: h.toml[domain]}
	if entry.PlainHTTP || isLoopback(host) && !ep.TLS.configured() {
		ep.Scheme = "http"
	}
	return ep
}

func (h *Hosts) fromDir(d hostDir, domain string) []Endpoint {
	eps := make([]Endpoint, len(d.eps))
	for i, ep := range d.eps {
		if ep.Host == "" {
			up := h.upstream(domain, config.RegistryHost{}, d.source)
			ep.Host, ep.Path = up.Host, "/v2"
			ep.Scheme = "https"
			if isLoopback(up.Host) && !ep.TLS.configured() {
				ep.Scheme = "http"
			}
		}
		ep.Mirror = i < len(d.eps)-1 || canonicalHost(ep.Host) != canonicalHost(domain)
		ep.creds = h.toml[ep.Host]
		if !ep.Mirror {
			ep.creds = h.toml[domain]
		}
		eps[i] = ep
	}
	return eps
}

func (h *Hosts) fromTOML(entry config.RegistryHost, domain string) ([]Endpoint, error) {
	var eps []Endpoint
	for _, m := range entry.Mirrors {
		ep, err := h.mirrorEndpoint(domain, m)
		if err != nil {
			return nil, err
		}
		if len(ep.TLS.CAFiles) == 0 && entry.CAFile != "" {
			ep.TLS.CAFiles = []string{entry.CAFile} // a mirror trusts the CA of the registry it mirrors
		}
		eps = append(eps, ep)
	}
	if entry.MirrorsOnly {
		if len(eps) == 0 {
			return nil, errdefs.FailedPrecondition("registry host %q: mirrors_only is set but there are no mirrors", domain)
		}
		return eps, nil
	}
	return append(eps, h.upstream(domain, entry, "berth.toml")), nil
}

func (h *Hosts) mirrorEndpoint(domain, mirror string) (Endpoint, error) {
	u, err := url.Parse(mirror)
	if err != nil {
		return Endpoint{}, fmt.Errorf("registry host %q: mirror %q: %v: %w", domain, mirror, err, errdefs.ErrInvalidArgument)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return Endpoint{}, fmt.Errorf("registry host %q: mirror %q: want http://host[:port][/path] or https://…: %w",
			domain, mirror, errdefs.ErrInvalidArgument)
	}
	own := h.toml[u.Host]
	return Endpoint{Host: u.Host, Scheme: u.Scheme, Path: apiRoot(u.Path, false), Mirror: true, Capabilities: capAll,
		TLS: tomlTLS(own), Source: "berth.toml", creds: own}, nil
}

// apiRoot is the path that replaces "/v2" for a server URL's path p, as containerd reads it: "/v2" is appended
// unless p already ends in it or override says p is the API root as is.
func apiRoot(p string, override bool) string {
	if p == "" || p == "/" {
		if override {
			return ""
		}
		return "/v2"
	}
	p = path.Clean("/" + p)
	if override || strings.HasSuffix(p, "/v2") {
		return p
	}
	return p + "/v2"
}

func tomlTLS(h config.RegistryHost) TLS {
	t := TLS{SkipVerify: h.SkipVerify}
	if h.CAFile != "" {
		t.CAFiles = []string{h.CAFile}
	}
	if h.ClientCert != "" {
		t.Clients = [][2]string{{h.ClientCert, h.ClientKey}}
	}
	return t
}

// hostNames lists the configured host names, for logging what a reload changed.
func (h *Hosts) hostNames() []string {
	names := map[string]bool{}
	for n := range h.toml {
		names[n] = true
	}
	for n := range h.dir {
		names[n] = true
	}
	return slices.Sorted(maps.Keys(names))
}

// isLoopback reports whether host[:port] names this machine: localhost or 127.0.0.0/8 or ::1. Like Docker and
// containerd, such registries are spoken to over plain HTTP without any configuration.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// sameRegistry reports whether a CRI AuthConfig.server_address (a host, or a URL like
// "https://index.docker.io/v1/") names host. Docker Hub answers to several names.
func sameRegistry(serverAddress, host string) bool {
	return canonicalHost(hostOf(serverAddress)) == canonicalHost(host)
}

// hostOf returns the host of a server address written as a host or as a URL.
func hostOf(serverAddress string) string {
	s := serverAddress
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		s = u.Host
	}
	s, _, _ = strings.Cut(s, "/")
	return s
}

func canonicalHost(h string) string {
	switch h {
	case dockerHub, "index.docker.io", dockerHubHost:
		return dockerHubHost
	}
	return h
}
