// Command registry serves an OCI/Docker v2 registry on a loopback address for the test bed.
// Blobs live on disk (-dir) so big benchmark images do not sit in memory; manifests are served from
// memory and recorded in the same dir (manifests.go), so a restarted registry, or one started on a
// copy of the dir (hack/vm carries it into node VMs), serves every image pushed before.
//
// For berth's registry-configuration tests a second instance on the same dir can serve TLS (-tls-cert, -tls-key),
// require client certificates (-client-ca), require basic auth (-basic-auth) and serve under a path (-prefix).
package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "loopback address to listen on")
	dir := flag.String("dir", "", "directory holding the blobs and the manifest index (required)")
	verbose := flag.Bool("v", false, "log every request")
	var o options
	flag.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with -tls-key)")
	flag.StringVar(&o.tlsKey, "tls-key", "", "PEM key of -tls-cert")
	flag.StringVar(&o.clientCA, "client-ca", "", "require client certificates signed by a CA of this PEM bundle (needs -tls-cert)")
	flag.StringVar(&o.basicAuth, "basic-auth", "", "require HTTP basic auth as user:password")
	flag.StringVar(&o.prefix, "prefix", "", "serve the API under this path, e.g. /cache (/cache/v2/...)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *dir, *verbose, o); err != nil {
		slog.Error("registry", "err", err)
		os.Exit(1)
	}
}

// options are the second-instance settings of the registry tests.
type options struct {
	tlsCert, tlsKey, clientCA, basicAuth, prefix string
}

// handler wraps the registry in basic auth and a path prefix, as o says.
func (o options) handler(next http.Handler) http.Handler {
	h := next
	if o.basicAuth != "" {
		user, pass, _ := strings.Cut(o.basicAuth, ":")
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	if o.prefix != "" {
		h = http.StripPrefix(strings.TrimSuffix(o.prefix, "/"), h)
	}
	return h
}

// tlsConfig is the server's TLS settings, nil for plain HTTP.
func (o options) tlsConfig() (*tls.Config, error) {
	if o.tlsCert == "" {
		if o.clientCA != "" || o.tlsKey != "" {
			return nil, errors.New("-client-ca and -tls-key need -tls-cert")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if o.clientCA != "" {
		pem, err := os.ReadFile(o.clientCA)
		if err != nil {
			return nil, fmt.Errorf("-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-client-ca %s: no PEM certificate", o.clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func run(ctx context.Context, addr, dir string, verbose bool, o options) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return err
	}
	if err := checkLoopback(addr); err != nil {
		return err
	}
	h, err := newDiskBlobs(dir)
	if err != nil {
		return err
	}
	reqLog := log.New(io.Discard, "", 0)
	if verbose {
		reqLog = log.New(os.Stderr, "registry: ", log.LstdFlags)
	}
	store, err := newManifestStore(dir, h, registry.New(registry.Logger(reqLog), registry.WithBlobHandler(h)))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           o.handler(store),
		ReadHeaderTimeout: 10 * time.Second,
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	slog.Info("registry listening", "addr", ln.Addr().String(), "dir", dir, "tls", tlsCfg != nil,
		"clientCerts", o.clientCA != "", "basicAuth", o.basicAuth != "", "prefix", o.prefix)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// checkLoopback refuses anything but a literal loopback IP: the test bed must never be reachable
// from, or resolve names on, another machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: host must be a loopback IP such as 127.0.0.1", addr)
	}
	return nil
}
