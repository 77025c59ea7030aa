package registry

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// dockerHub is the name references use for Docker Hub, and dockerHubHost the host that serves its API.
const (
	dockerHub     = "docker.io"
	dockerHubHost = "registry-1.docker.io"
)

// Endpoint is one place a repository can be fetched from: a mirror or the registry host itself.
type Endpoint struct {
	// Host is host[:port] as it is dialled and put in URLs.
	Host string
	// Scheme is "https" or "http".
	Scheme string
	// Mirror is true for a mirror of the reference's registry.
	Mirror bool
	// Config holds the TLS and credential settings of Host: the entry keyed by the host's own name. A mirror
	// without a CA file of its own trusts the CA file of the registry it mirrors.
	Config config.RegistryHost
}

// Endpoints returns, in the order to try them, where the repositories of registry domain (as it appears in a
// normalised reference, e.g. "docker.io", "127.0.0.1:5000") are fetched from: the configured mirrors in order
// (the repository path is kept), then the registry itself unless mirrors_only is set. With mirrors_only the
// upstream host is never part of the answer, so it is never dialled nor even looked up in DNS.
func Endpoints(reg config.RegistryConfig, domain string) ([]Endpoint, error) {
	entry := reg.Hosts[domain]
	var eps []Endpoint
	for _, m := range entry.Mirrors {
		ep, err := mirrorEndpoint(reg, domain, m)
		if err != nil {
			return nil, err
		}
		if ep.Config.CAFile == "" {
			ep.Config.CAFile = entry.CAFile
		}
		eps = append(eps, ep)
	}
	if entry.MirrorsOnly {
		if len(eps) == 0 {
			return nil, errdefs.FailedPrecondition("registry host %q: mirrors_only is set but there are no mirrors", domain)
		}
		return eps, nil
	}
	host := domain
	if domain == dockerHub {
		host = dockerHubHost
	}
	scheme := "https"
	if entry.PlainHTTP || isLoopback(host) {
		scheme = "http"
	}
	return append(eps, Endpoint{Host: host, Scheme: scheme, Config: entry}), nil
}

func mirrorEndpoint(reg config.RegistryConfig, domain, mirror string) (Endpoint, error) {
	u, err := url.Parse(mirror)
	if err != nil {
		return Endpoint{}, fmt.Errorf("registry host %q: mirror %q: %v: %w", domain, mirror, err, errdefs.ErrInvalidArgument)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return Endpoint{}, fmt.Errorf("registry host %q: mirror %q: want http://host[:port] or https://host[:port]: %w",
			domain, mirror, errdefs.ErrInvalidArgument)
	}
	// The mirror serves the same repository paths as the upstream host, so a path prefix has no meaning here.
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != "/v2" {
		return Endpoint{}, fmt.Errorf("registry host %q: mirror %q: a path is not supported: %w",
			domain, mirror, errdefs.ErrInvalidArgument)
	}
	return Endpoint{Host: u.Host, Scheme: u.Scheme, Mirror: true, Config: reg.Hosts[u.Host]}, nil
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
	s := serverAddress
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		s = u.Host
	}
	s = strings.TrimSuffix(s, "/")
	return canonicalHost(s) == canonicalHost(host)
}

func canonicalHost(h string) string {
	switch h {
	case dockerHub, "index.docker.io", dockerHubHost:
		return dockerHubHost
	}
	return h
}
