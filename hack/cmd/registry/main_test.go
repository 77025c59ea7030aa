package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestCheckLoopback(t *testing.T) {
	tests := map[string]struct {
		addr    string
		wantErr bool
	}{
		"ipv4 loopback":       {addr: "127.0.0.1:5000"},
		"other 127/8 address": {addr: "127.0.0.2:5000"},
		"ipv6 loopback":       {addr: "[::1]:5000"},
		"all interfaces":      {addr: ":5000", wantErr: true},
		"unspecified":         {addr: "0.0.0.0:5000", wantErr: true},
		"private address":     {addr: "10.0.0.1:5000", wantErr: true},
		"name":                {addr: "localhost:5000", wantErr: true},
		"no port":             {addr: "127.0.0.1", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := checkLoopback(tc.addr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkLoopback(%q) = %v, want error %v", tc.addr, err, tc.wantErr)
			}
		})
	}
}

func TestDiskBlobsRoundTrip(t *testing.T) {
	h, err := newDiskBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger()), registry.WithBlobHandler(h)))
	defer srv.Close()

	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/test/img:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		size, _ := l.Size()
		st, err := h.Stat(context.Background(), "test/img", d)
		if err != nil || st != size {
			t.Errorf("Stat(%s) = %d, %v; want %d", d, st, err, size)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("read layer %s: %v", d, err)
		}
		rc.Close()
	}
	wantDigest, _ := img.Digest()
	gotDigest, _ := got.Digest()
	if wantDigest != gotDigest {
		t.Errorf("pulled digest %s, pushed %s", gotDigest, wantDigest)
	}

	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	if _, err := h.Stat(context.Background(), "test/img", missing); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Stat(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := h.Get(context.Background(), "test/img", missing); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}
	resp, err := http.Head(srv.URL + "/v2/test/img/blobs/" + missing.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD missing blob: status %d, want 404", resp.StatusCode)
	}
}

func TestDiskBlobsRejectsDigestMismatch(t *testing.T) {
	h, err := newDiskBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger()), registry.WithBlobHandler(h)))
	defer srv.Close()

	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	resp, err := http.Post(srv.URL+"/v2/test/img/blobs/uploads/?digest="+wrong.String(), "application/octet-stream", bytes.NewReader([]byte("hello")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("upload with wrong digest: status %d, want 400", resp.StatusCode)
	}
	if _, err := h.Stat(context.Background(), "test/img", wrong); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Stat after rejected upload = %v, want ErrNotFound", err)
	}
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func TestOptionsHandler(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	h := options{basicAuth: "u:p", prefix: "/cache/"}.handler(next)
	for name, tc := range map[string]struct {
		path, user, pass string
		code             int
		body             string
	}{
		"no credentials":     {path: "/cache/v2/", code: http.StatusUnauthorized},
		"wrong password":     {path: "/cache/v2/", user: "u", pass: "x", code: http.StatusUnauthorized},
		"prefix stripped":    {path: "/cache/v2/a/manifests/1", user: "u", pass: "p", code: http.StatusOK, body: "/v2/a/manifests/1"},
		"outside the prefix": {path: "/v2/", user: "u", pass: "p", code: http.StatusNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || tc.body != "" && rec.Body.String() != tc.body {
				t.Errorf("%s: %d %q, want %d %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
			}
			if tc.code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Error("no Basic challenge")
			}
		})
	}
}
