// Package registry fetches images from OCI distribution registries: it maps a registry to its endpoints
// (mirrors, plain HTTP, CA files, credentials), resolves a reference to the node's platform manifest and config,
// and streams blobs. It stores nothing.
//
// The protocol is spoken by go-containerregistry's pkg/v1/remote: a small, well-kept client (crane, ko, Kaniko)
// whose transport does the ping and token/basic auth handshake, and that leaves the blob byte stream to us.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// Client fetches from registries as the registry config says. It is safe for concurrent use.
type Client struct {
	cfg config.RegistryConfig
	log *slog.Logger

	// Dial opens connections; nil means a net.Dialer. Tests set it to make sure nothing leaves the machine.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxLayers refuses images of more layers, at Resolve; 0 means no cap. The image service sets what overlayfs
	// can stack.
	MaxLayers int

	mu         sync.Mutex
	transports map[string]*http.Transport // by CA file, "" for the system roots
}

// New returns a client for cfg. CA files are read when a host that names one is first contacted.
func New(cfg config.RegistryConfig, log *slog.Logger) *Client {
	return &Client{cfg: cfg, log: log, transports: map[string]*http.Transport{}}
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

// baseTransport returns the shared HTTP transport for the TLS settings of ep, so connections are reused across
// pulls from the same host.
func (c *Client) baseTransport(ep Endpoint) (*http.Transport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	caFile := ep.Config.CAFile
	if t, ok := c.transports[caFile]; ok {
		return t, nil
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("registry host %q: ca_file: %w", ep.Host, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry host %q: ca_file %s: no PEM certificate in it: %w", ep.Host, caFile,
				errdefs.ErrFailedPrecondition)
		}
		tlsConfig.RootCAs = pool
	}
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	downloads := max(c.cfg.MaxConcurrentDownloads, 1)
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   downloads + 1, // parallel layer downloads plus the manifest
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        64 << 10,
	}
	c.transports[caFile] = t
	return t, nil
}

// schemeTransport forces the endpoint's scheme on every request to its host. go-containerregistry tries
// https first and falls back to http for hosts it deems local (RFC 1918, .local); the scheme here is decided
// by the registry config alone, so a configured HTTPS host is never downgraded and a plain-HTTP one never
// costs a TLS attempt.
type schemeTransport struct {
	host, scheme string
	inner        http.RoundTripper
}

func (t *schemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == t.host && req.URL.Scheme != t.scheme {
		req = req.Clone(req.Context())
		req.URL.Scheme = t.scheme
	}
	return t.inner.RoundTrip(req)
}
