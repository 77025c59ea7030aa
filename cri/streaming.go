package cri

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"

	"github.com/berthcri/berth/internal/errdefs"
)

// streamDrainTimeout bounds how long stopping the streaming server waits for its sessions to end once they
// were told to: an exec's processes are killed before berthd exits.
const streamDrainTimeout = 5 * time.Second

// StreamOptions say where the streaming server (exec, attach, port-forward) listens.
type StreamOptions struct {
	// Address is the host to listen on. The URLs handed out name it, or 127.0.0.1 when it is unspecified
	// (0.0.0.0 or ::): the kubelet, which proxies the streams, runs on this node.
	Address string
	Port    int // 0 picks a free port
	// TLSCert and TLSKey are PEM files; both or neither. With them the server speaks HTTPS.
	TLSCert, TLSKey string
}

// streamServer is the cri-streaming server over berth's runtime, with the HTTP server it runs in.
type streamServer struct {
	streaming.Server
	http     *http.Server
	sessions *sessions
}

// ServeStreams starts the streaming server whose single-use URLs Exec, Attach and PortForward return. It
// must be called before the CRI is served. stop ends every session (exec'd processes are killed) and the
// server; it returns the server's address, host:port, for the log.
func (s *RuntimeServer) ServeStreams(o StreamOptions) (addr string, stop func(), err error) {
	var tlsConfig *tls.Config
	scheme := "http"
	if o.TLSCert != "" || o.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return "", nil, fmt.Errorf("streaming server: load TLS key pair %s, %s: %w", o.TLSCert, o.TLSKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(o.Address, strconv.Itoa(o.Port)))
	if err != nil {
		return "", nil, fmt.Errorf("streaming server: listen: %w", err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	host := o.Address
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = lis.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	cfg.TLSConfig = tlsConfig
	klog.SetSlogLogger(s.log.With("component", "streaming"))
	srv, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		lis.Close()
		return "", nil, fmt.Errorf("streaming server: %w", err)
	}
	ss := &streamServer{Server: srv, sessions: newSessions()}
	ss.http = &http.Server{Handler: ss.sessions.handler(srv), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if tlsConfig != nil {
		// HTTP/1.1 only (no ALPN h2): SPDY and WebSocket upgrade an HTTP/1.1 connection.
		lis = tls.NewListener(lis, tlsConfig)
	}
	go func() {
		if err := ss.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("streaming server stopped", "err", err)
		}
	}()
	s.streams = ss
	return cfg.Addr, func() {
		ss.http.Close()
		ss.sessions.end(streamDrainTimeout)
	}, nil
}

// streamServer returns the streaming server, or an error when ServeStreams was not called.
func (s *RuntimeServer) streamServer() (*streamServer, error) {
	if s.streams == nil {
		return nil, fmt.Errorf("streaming server not running: %w", errdefs.ErrUnavailable)
	}
	return s.streams, nil
}

// streamRuntime runs what the streaming server's sessions ask for (container_exec.go, container_attach.go,
// pod_port_forward.go). Its container and pod ids are full ids: the RPCs resolve prefixes before handing out
// a URL.
type streamRuntime struct{ s *RuntimeServer }

// terminalSizes converts the streaming server's resize events until they end or ctx does.
func terminalSizes[T any](ctx context.Context, in <-chan remotecommand.TerminalSize, conv func(remotecommand.TerminalSize) T) <-chan T {
	if in == nil {
		return nil
	}
	out := make(chan T)
	go func() {
		defer close(out)
		for {
			select {
			case sz, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- conv(sz):
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// sessions tracks the streaming server's requests and the connections they take over, so that a client
// going away ends its session and stop ends them all. The streaming library runs a session with the
// request's context but net/http does not cancel that context when a hijacked connection drops: the
// handler here cancels it as soon as a read from the connection fails.
type sessions struct {
	base   context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*watchedConn]struct{}
}

// The causes of a session's end, as context.Cause reports them.
var (
	errClientGone     = errors.New("client left")
	errStreamsStopped = errors.New("streaming server stopped")
)

func newSessions() *sessions {
	base, cancel := context.WithCancelCause(context.Background())
	return &sessions{base: base, cancel: cancel, conns: map[*watchedConn]struct{}{}}
}

func (ss *sessions) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss.wg.Add(1)
		defer ss.wg.Done()
		ctx, cancel := context.WithCancelCause(ss.base)
		defer cancel(nil)
		hj, ok := w.(http.Hijacker)
		if !ok {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		gone := func() { cancel(errClientGone) }
		next.ServeHTTP(&hijackWatcher{ResponseWriter: w, hj: hj, sessions: ss, gone: gone}, r.WithContext(ctx))
	})
}

// end cancels every session, closes the connections they took over and waits at most d for them to finish.
func (ss *sessions) end(d time.Duration) {
	ss.cancel(errStreamsStopped)
	ss.mu.Lock()
	for c := range ss.conns {
		c.Conn.Close()
	}
	ss.mu.Unlock()
	done := make(chan struct{})
	go func() {
		ss.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// hijackWatcher hands the streaming library a connection that reports its end.
type hijackWatcher struct {
	http.ResponseWriter
	hj       http.Hijacker
	sessions *sessions
	gone     func()
}

// Hijack returns the connection wrapped, with a reader that serves the bytes net/http already buffered
// and then reads through the wrapper: both SPDY and WebSocket read the connection through that reader.
func (w *hijackWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := w.hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	wc := &watchedConn{Conn: conn, sessions: w.sessions, gone: w.gone}
	w.sessions.mu.Lock()
	w.sessions.conns[wc] = struct{}{}
	w.sessions.mu.Unlock()
	buffered, _ := rw.Reader.Peek(rw.Reader.Buffered())
	r := bufio.NewReader(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), wc))
	return wc, bufio.NewReadWriter(r, rw.Writer), nil
}

// watchedConn calls gone when a read fails: the client left, the library closed the connection, or it idled
// out. The streaming library reads its connection continuously, so a read is always pending.
type watchedConn struct {
	net.Conn
	sessions *sessions
	gone     func()
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.gone()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.sessions.mu.Lock()
	delete(c.sessions.conns, c)
	c.sessions.mu.Unlock()
	return c.Conn.Close()
}
