// Package registry fetches images from OCI distribution registries: it maps a registry to its endpoints
// (mirrors, plain HTTP, CA files, credentials), resolves a reference to the node's platform manifest and config,
// and streams blobs. It stores nothing.
//
// The protocol is spoken by go-containerregistry's pkg/v1/remote: a small, well-kept client (crane, ko, Kaniko)
// whose transport does the ping and token/basic auth handshake, and that leaves the blob byte stream to us.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// Client fetches from registries as the registry config says. It is safe for concurrent use. Its configuration
// never changes: a reload makes a new Client, so that a pull in flight keeps the one it started with.
type Client struct {
	cfg    config.RegistryConfig
	hosts  *Hosts
	docker *dockerConfig
	log    *slog.Logger

	// Dial opens connections; nil means a net.Dialer. Tests set it to make sure nothing leaves the machine.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxLayers refuses images of more layers, at Resolve; 0 means no cap. The image service sets what overlayfs
	// can stack.
	MaxLayers int

	mu         sync.Mutex
	transports map[string]*http.Transport // by TLS.key()
}

// Load reads what cfg names besides itself (the certs.d dir of registry.config_path, registry.docker_config) and
// checks every CA bundle and client certificate it names, so that what cannot work is refused now, naming the file
// and the key, rather than at the first pull. A host configured both in berth.toml and in the certs.d dir is
// refused: which of the two applies would be a guess.
func Load(cfg config.RegistryConfig, log *slog.Logger) (*Client, error) {
	dir, err := loadHostsDirs(cfg.ConfigPath)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, host := range slices.Sorted(maps.Keys(dir)) {
		if _, ok := cfg.Hosts[host]; ok {
			errs = append(errs, fmt.Errorf("registry host %q is configured both in [registry.hosts.%q] and in %s; keep one: %w",
				host, host, dir[host].source, errdefs.ErrInvalidArgument))
		}
		for _, ep := range dir[host].eps {
			if err := checkTLS(ep.TLS); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ep.Source, err))
			}
		}
	}
	for _, host := range slices.Sorted(maps.Keys(cfg.Hosts)) {
		if err := checkTLS(tomlTLS(cfg.Hosts[host])); err != nil {
			errs = append(errs, fmt.Errorf("[registry.hosts.%q]: %w", host, err))
		}
	}
	docker, err := loadDockerConfig(cfg.DockerConfig)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, hosts: &Hosts{toml: cfg.Hosts, dir: dir}, docker: docker, log: log,
		transports: map[string]*http.Transport{}}, nil
}

// Endpoints returns where a pull of a reference of registry domain goes, in order (Hosts.Endpoints).
func (c *Client) Endpoints(domain string) ([]Endpoint, error) { return c.hosts.Endpoints(domain) }

// Hosts lists the hosts configured in berth.toml and the certs.d dir.
func (c *Client) Hosts() []string { return c.hosts.hostNames() }

// Fingerprint identifies everything a pull from host would use (endpoints, TLS settings, berth.toml credentials),
// so that a reload can tell which hosts changed; it reveals nothing of the credentials.
func (c *Client) Fingerprint(host string) string {
	eps, err := c.Endpoints(host)
	sum := sha256.Sum256(fmt.Appendf(nil, "%+v %v", eps, err))
	return hex.EncodeToString(sum[:8])
}

// Close drops the client's idle connections; pulls still using it finish.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
}

// limits are the caps of manifest.go; unset sizes take the defaults.
func (c *Client) limits() limits {
	d := config.Default().Registry
	l := limits{manifestSize: int64(c.cfg.MaxManifestSize), configSize: int64(c.cfg.MaxConfigSize), layers: c.MaxLayers}
	if l.manifestSize <= 0 {
		l.manifestSize = int64(d.MaxManifestSize)
	}
	if l.configSize <= 0 {
		l.configSize = int64(d.MaxConfigSize)
	}
	return l
}

// tlsConfig builds the TLS settings of t: the system roots plus its CA bundles, its client certificates.
func tlsConfig(t TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.SkipVerify} //nolint:gosec // skip_verify is the operator's
	if len(t.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range t.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("ca: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca %s: no PEM certificate in it: %w", f, errdefs.ErrInvalidArgument)
			}
		}
		cfg.RootCAs = pool
	}
	for _, pair := range t.Clients {
		cert, err := os.ReadFile(pair[0])
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		key := cert
		if pair[1] != "" {
			if key, err = os.ReadFile(pair[1]); err != nil {
				return nil, fmt.Errorf("client: %w", err)
			}
		}
		kp, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client %s: %v: %w", strings.Join(slices.DeleteFunc(pair[:], func(s string) bool { return s == "" }), ", "),
				err, errdefs.ErrInvalidArgument)
		}
		cfg.Certificates = append(cfg.Certificates, kp)
	}
	return cfg, nil
}

func checkTLS(t TLS) error {
	_, err := tlsConfig(t)
	return err
}

// baseTransport returns the shared HTTP transport for the TLS settings of ep, so connections are reused across
// pulls from the same host.
func (c *Client) baseTransport(ep Endpoint) (*http.Transport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := ep.TLS.key()
	if t, ok := c.transports[key]; ok {
		return t, nil
	}
	tlsCfg, err := tlsConfig(ep.TLS)
	if err != nil {
		return nil, fmt.Errorf("registry host %q: %w", ep.Host, err)
	}
	dial := c.Dial
	if dial == nil {
		timeout := ep.TLS.DialTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		dial = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	downloads := max(c.cfg.MaxConcurrentDownloads, 1)
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   downloads + 1, // parallel layer downloads plus the manifest
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        64 << 10,
	}
	c.transports[key] = t
	return t, nil
}

// endpointTransport fits every request to the endpoint's host to the endpoint: its scheme, its API root and its
// headers. go-containerregistry tries https first and falls back to http for hosts it deems local (RFC 1918,
// .local), and always speaks to /v2/; here the scheme is decided by the registry config alone, so a configured
// HTTPS host is never downgraded and a plain-HTTP one never costs a TLS attempt, and a mirror with a path (or
// override_path) gets "/v2" replaced by its own root. A mirror's requests carry ?ns=<registry> as containerd's do,
// so that a pull-through cache of several registries knows which one is meant. Requests to other hosts (token
// servers, blob redirects) pass unchanged.
type endpointTransport struct {
	ep    Endpoint
	ns    string // the registry a mirror stands in for; "" for the registry itself
	inner http.RoundTripper
}

func (t *endpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.ep.Host {
		return t.inner.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.URL.Scheme = t.ep.Scheme
	if rest, ok := strings.CutPrefix(req.URL.Path, "/v2"); ok && (rest == "" || rest[0] == '/') {
		req.URL.Path = t.ep.Path + rest
		req.URL.RawPath = ""
		if t.ns != "" && rest != "/" && rest != "" && !req.URL.Query().Has("ns") {
			q := req.URL.Query()
			q.Set("ns", t.ns)
			req.URL.RawQuery = q.Encode()
		}
	}
	for k, v := range t.ep.Header {
		if req.Header.Get(k) == "" {
			req.Header[k] = v
		}
	}
	return t.inner.RoundTrip(req)
}
