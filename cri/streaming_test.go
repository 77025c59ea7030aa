package cri

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamingServer is a RuntimeServer over records only (no runtime), with its streaming server running.
func streamingServer(t *testing.T, o StreamOptions) *RuntimeServer {
	t.Helper()
	s, err := NewRuntimeServer(RuntimeOptions{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_, stop, err := s.ServeStreams(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

func TestStreamRequests(t *testing.T) {
	s := streamingServer(t, StreamOptions{Address: "127.0.0.1"})
	for _, p := range []podRecord{{ID: "pod-ready", State: podReady}, {ID: "pod-stopped", State: podNotReady}} {
		if err := s.pods.Create(p.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []containerRecord{
		{ID: "ctr-running", PodID: "pod-ready", State: ctrRunning},
		{ID: "ctr-created", PodID: "pod-ready", State: ctrCreated},
		{ID: "ctr-exited", PodID: "pod-ready", State: ctrExited},
	} {
		if err := s.containers.Create(c.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	const base = "http://127.0.0.1:"
	exec := func(r *runtimeapi.ExecRequest) func() (string, error) {
		return func() (string, error) {
			resp, err := s.Exec(context.Background(), r)
			return resp.GetUrl(), err
		}
	}
	attach := func(r *runtimeapi.AttachRequest) func() (string, error) {
		return func() (string, error) {
			resp, err := s.Attach(context.Background(), r)
			return resp.GetUrl(), err
		}
	}
	portForward := func(r *runtimeapi.PortForwardRequest) func() (string, error) {
		return func() (string, error) {
			resp, err := s.PortForward(context.Background(), r)
			return resp.GetUrl(), err
		}
	}
	sh := []string{"sh"}
	cases := map[string]struct {
		call    func() (string, error)
		code    codes.Code
		url     string // prefix of the URL handed out
		message string // part of the error message
	}{
		"exec":                   {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-running", Cmd: sh, Stdout: true}), url: "/exec/"},
		"exec by id prefix":      {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-r", Cmd: sh, Stdin: true, Tty: true}), url: "/exec/"},
		"exec unknown container": {call: exec(&runtimeapi.ExecRequest{ContainerId: "nope", Cmd: sh, Stdout: true}), code: codes.NotFound},
		"exec exited container": {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-exited", Cmd: sh, Stdout: true}),
			code: codes.FailedPrecondition, message: "exited, not running"},
		"exec created container": {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-created", Cmd: sh, Stdout: true}),
			code: codes.FailedPrecondition},
		"exec tty with stderr": {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-running", Cmd: sh, Tty: true, Stdout: true, Stderr: true}),
			code: codes.InvalidArgument, message: "stderr: must be false with tty"},
		"exec no stream": {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-running", Cmd: sh}),
			code: codes.InvalidArgument, message: "one of them must be true"},
		"exec no command": {call: exec(&runtimeapi.ExecRequest{ContainerId: "ctr-running", Stdout: true}),
			code: codes.InvalidArgument, message: "cmd"},
		"exec no id": {call: exec(&runtimeapi.ExecRequest{Cmd: sh, Stdout: true}), code: codes.InvalidArgument, message: "container_id"},

		"attach":                   {call: attach(&runtimeapi.AttachRequest{ContainerId: "ctr-running", Stdout: true, Stderr: true}), url: "/attach/"},
		"attach created container": {call: attach(&runtimeapi.AttachRequest{ContainerId: "ctr-created", Stdout: true}), url: "/attach/"},
		"attach unknown container": {call: attach(&runtimeapi.AttachRequest{ContainerId: "nope", Stdout: true}), code: codes.NotFound},
		"attach exited container": {call: attach(&runtimeapi.AttachRequest{ContainerId: "ctr-exited", Stdout: true}),
			code: codes.FailedPrecondition},
		"attach tty with stderr": {call: attach(&runtimeapi.AttachRequest{ContainerId: "ctr-running", Tty: true, Stderr: true}),
			code: codes.InvalidArgument, message: "stderr"},

		"port-forward":             {call: portForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod-ready", Port: []int32{80}}), url: "/portforward/"},
		"port-forward by prefix":   {call: portForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod-r"}), url: "/portforward/"},
		"port-forward unknown pod": {call: portForward(&runtimeapi.PortForwardRequest{PodSandboxId: "nope"}), code: codes.NotFound},
		"port-forward stopped pod": {call: portForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod-stopped"}),
			code: codes.FailedPrecondition, message: "notready, not ready"},
		"port-forward bad port": {call: portForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod-ready", Port: []int32{70000}}),
			code: codes.InvalidArgument, message: "port: 70000"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			url, err := tc.call()
			if got := status.Code(toStatus(err)); got != tc.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
			if err == nil && !strings.HasPrefix(url, base) || !strings.Contains(url, tc.url) {
				t.Errorf("url = %q, want %s…%s…", url, base, tc.url)
			}
		})
	}
}

func TestStreamsNotServed(t *testing.T) {
	s, err := NewRuntimeServer(RuntimeOptions{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.containers.Create("c", containerRecord{ID: "c", State: ctrRunning})
	_, err = s.Exec(context.Background(), &runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}, Stdout: true})
	if status.Code(toStatus(err)) != codes.Unavailable {
		t.Errorf("Exec without a streaming server: %v, want Unavailable", err)
	}
}

func TestStreamURLs(t *testing.T) {
	cert, key := selfSigned(t)
	cases := map[string]struct {
		opts   StreamOptions
		scheme string
		host   string
	}{
		"loopback":         {StreamOptions{Address: "127.0.0.1"}, "http", "127.0.0.1"},
		"all IPv4":         {StreamOptions{Address: "0.0.0.0"}, "http", "127.0.0.1"},
		"all IPv6":         {StreamOptions{Address: "::"}, "http", "127.0.0.1"},
		"TLS on loopback":  {StreamOptions{Address: "127.0.0.1", TLSCert: cert, TLSKey: key}, "https", "127.0.0.1"},
		"name of the host": {StreamOptions{Address: "localhost"}, "http", "localhost"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := streamingServer(t, tc.opts)
			s.pods.Create("p", podRecord{ID: "p", State: podReady})
			resp, err := s.PortForward(context.Background(), &runtimeapi.PortForwardRequest{PodSandboxId: "p"})
			if err != nil {
				t.Fatal(err)
			}
			prefix := tc.scheme + "://" + tc.host + ":"
			if !strings.HasPrefix(resp.Url, prefix) {
				t.Fatalf("url %q, want %s<port>/…", resp.Url, prefix)
			}
			// The URL answers; a GET is no upgrade, so the session fails, but after the token was consumed: a
			// second GET is a 404.
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			for i, want := range []int{http.StatusBadRequest, http.StatusNotFound} {
				r, err := client.Get(resp.Url)
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode != want {
					t.Errorf("GET %d: status %d, want %d", i+1, r.StatusCode, want)
				}
			}
		})
	}
	t.Run("bad key pair", func(t *testing.T) {
		s, err := NewRuntimeServer(RuntimeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.ServeStreams(StreamOptions{Address: "127.0.0.1", TLSCert: cert, TLSKey: cert})
		if err == nil || !strings.Contains(err.Error(), "load TLS key pair "+cert) {
			t.Errorf("ServeStreams with a certificate as key: %v", err)
		}
	})
}

func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestSessions checks that a session that took over its connection ends when the client leaves or the server
// stops, and that bytes the client sent with its request reach the session.
func TestSessions(t *testing.T) {
	cases := map[string]struct {
		end   func(client net.Conn, ss *sessions)
		cause error
	}{
		"client leaves":      {func(client net.Conn, _ *sessions) { client.Close() }, errClientGone},
		"server stops":       {func(_ net.Conn, ss *sessions) { ss.end(time.Second) }, errStreamsStopped},
		"client half-closes": {func(client net.Conn, _ *sessions) { client.(*net.TCPConn).CloseWrite() }, errClientGone},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ss := newSessions()
			first := make(chan string, 1)
			cause := make(chan error, 1)
			ended := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, rw, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				line, _ := rw.ReadString('\n')
				first <- line
				go io.Copy(io.Discard, rw) // like SPDY and WebSocket: always reading
				<-r.Context().Done()
				cause <- context.Cause(r.Context())
				close(ended)
			})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			hs := &http.Server{Handler: ss.handler(h)}
			go hs.Serve(lis)
			defer hs.Close()

			client, err := net.Dial("tcp", lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			// The request and the first bytes of the session in one write: net/http buffers them together.
			io.WriteString(client, "GET /x HTTP/1.1\r\nHost: test\r\n\r\nhello\n")
			select {
			case got := <-first:
				if got != "hello\n" {
					t.Errorf("session read %q first, want the bytes sent with the request", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no session")
			}
			tc.end(client, ss)
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("session context not cancelled")
			}
			if got := <-cause; got != tc.cause {
				t.Errorf("cause %v, want %v", got, tc.cause)
			}
			ss.mu.Lock()
			n := len(ss.conns)
			ss.mu.Unlock()
			if n != 0 {
				t.Errorf("%d connections still tracked", n)
			}
		})
	}
}

// pipeStream is a client's port-forward stream: it reads from in and collects what is written.
type pipeStream struct {
	in  io.Reader
	mu  sync.Mutex
	out strings.Builder
}

func (p *pipeStream) Read(b []byte) (int, error) { return p.in.Read(b) }
func (p *pipeStream) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func TestProxy(t *testing.T) {
	blocked, unblock := io.Pipe()
	defer unblock.Close()
	cases := map[string]struct {
		client io.Reader                              // what the client sends, then its end (EOF) or nothing more (blocked)
		pod    func(c net.Conn, done <-chan struct{}) // the pod's server side of one connection
		want   string                                 // what the client receives
		after  time.Duration                          // at least this long before proxy returns
	}{
		"pod answers after the client's end": {
			client: strings.NewReader("question"),
			pod: func(c net.Conn, _ <-chan struct{}) {
				b, _ := io.ReadAll(c) // until the half-close
				c.Write(append([]byte("answer to "), b...))
			},
			want: "answer to question",
		},
		"pod closes first": {
			client: blocked,
			pod:    func(c net.Conn, _ <-chan struct{}) { c.Write([]byte("bye")) },
			want:   "bye",
		},
		"pod keeps an idle connection open": {
			client: strings.NewReader("GET"),
			pod: func(c net.Conn, done <-chan struct{}) {
				b := make([]byte, 3)
				io.ReadFull(c, b)
				c.Write([]byte("200"))
				<-done // keep-alive: never closes on its own
			},
			want:  "200",
			after: 100 * time.Millisecond,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			done := make(chan struct{})
			defer close(done)
			go func() {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				tc.pod(c, done)
			}()
			conn, err := net.Dial("tcp", lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			stream := &pipeStream{in: tc.client}
			start := time.Now()
			if err := proxy(context.Background(), conn, stream, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < tc.after || d > 10*time.Second {
				t.Errorf("proxy returned after %v", d)
			}
			stream.mu.Lock()
			defer stream.mu.Unlock()
			if stream.out.String() != tc.want {
				t.Errorf("client got %q, want %q", stream.out.String(), tc.want)
			}
		})
	}
}
