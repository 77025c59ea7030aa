package registry

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

func TestEndpoints(t *testing.T) {
	hosts := map[string]config.RegistryHost{
		"registry.k8s.io":     {Mirrors: []string{"http://127.0.0.1:5000", "https://mirror.example:8443/"}, MirrorsOnly: true},
		"gcr.io":              {Mirrors: []string{"http://127.0.0.1:5000"}, CAFile: "/gcr.pem"},
		"plain.example":       {PlainHTTP: true},
		"mirror.example:8443": {CAFile: "/mirror.pem", Username: "m", ClientCert: "/c.pem", ClientKey: "/k.pem"},
		"nomirrors.example":   {MirrorsOnly: true},
		"path.example":        {Mirrors: []string{"http://127.0.0.1:5000/prefix", "https://m.example/a/b/v2/"}},
		"v2path.example":      {Mirrors: []string{"http://127.0.0.1:5000/v2/"}},
		"secure.loopback:443": {},
		"127.0.0.2:5000":      {SkipVerify: true},
	}
	all := capAll
	mirrorEntry := hosts["mirror.example:8443"]
	for name, tc := range map[string]struct {
		hosts  map[string]config.RegistryHost
		domain string
		want   []Endpoint
		err    error
	}{
		"unconfigured host is contacted directly over https": {
			domain: "quay.io",
			want:   []Endpoint{{Host: "quay.io", Scheme: "https", Path: "/v2", Capabilities: all}},
		},
		"docker hub is served by registry-1.docker.io": {
			domain: "docker.io",
			want:   []Endpoint{{Host: "registry-1.docker.io", Scheme: "https", Path: "/v2", Capabilities: all}},
		},
		"localhost is plain http without config": {
			domain: "localhost:5000",
			want:   []Endpoint{{Host: "localhost:5000", Scheme: "http", Path: "/v2", Capabilities: all}},
		},
		"ipv6 loopback is plain http": {
			domain: "[::1]:5000",
			want:   []Endpoint{{Host: "[::1]:5000", Scheme: "http", Path: "/v2", Capabilities: all}},
		},
		"a loopback host with TLS settings is https": {
			domain: "127.0.0.2:5000",
			want: []Endpoint{{Host: "127.0.0.2:5000", Scheme: "https", Path: "/v2", Capabilities: all,
				TLS: TLS{SkipVerify: true}, Source: "berth.toml", creds: hosts["127.0.0.2:5000"]}},
		},
		"private addresses stay https": {
			domain: "10.0.0.1:5000",
			want:   []Endpoint{{Host: "10.0.0.1:5000", Scheme: "https", Path: "/v2", Capabilities: all}},
		},
		"plain_http host": {
			domain: "plain.example",
			want: []Endpoint{{Host: "plain.example", Scheme: "http", Path: "/v2", Capabilities: all, Source: "berth.toml",
				creds: hosts["plain.example"]}},
		},
		"mirrors in order, then upstream; a mirror inherits the CA file": {
			domain: "gcr.io",
			want: []Endpoint{
				{Host: "127.0.0.1:5000", Scheme: "http", Path: "/v2", Mirror: true, Capabilities: all,
					TLS: TLS{CAFiles: []string{"/gcr.pem"}}, Source: "berth.toml"},
				{Host: "gcr.io", Scheme: "https", Path: "/v2", Capabilities: all, TLS: TLS{CAFiles: []string{"/gcr.pem"}},
					Source: "berth.toml", creds: hosts["gcr.io"]},
			},
		},
		"mirrors_only never lists the upstream host; a mirror keeps its own TLS and credentials": {
			domain: "registry.k8s.io",
			want: []Endpoint{
				{Host: "127.0.0.1:5000", Scheme: "http", Path: "/v2", Mirror: true, Capabilities: all, Source: "berth.toml"},
				{Host: "mirror.example:8443", Scheme: "https", Path: "/v2", Mirror: true, Capabilities: all,
					TLS:    TLS{CAFiles: []string{"/mirror.pem"}, Clients: [][2]string{{"/c.pem", "/k.pem"}}},
					Source: "berth.toml", creds: mirrorEntry},
			},
		},
		"mirrors_only without mirrors fails closed": {
			domain: "nomirrors.example",
			err:    errdefs.ErrFailedPrecondition,
		},
		"a mirror's path gets /v2 appended unless it ends in it": {
			domain: "path.example",
			want: []Endpoint{
				{Host: "127.0.0.1:5000", Scheme: "http", Path: "/prefix/v2", Mirror: true, Capabilities: all, Source: "berth.toml"},
				{Host: "m.example", Scheme: "https", Path: "/a/b/v2", Mirror: true, Capabilities: all, Source: "berth.toml"},
				{Host: "path.example", Scheme: "https", Path: "/v2", Capabilities: all, Source: "berth.toml",
					creds: hosts["path.example"]},
			},
		},
		"mirror with /v2 path is the same host": {
			domain: "v2path.example",
			want: []Endpoint{
				{Host: "127.0.0.1:5000", Scheme: "http", Path: "/v2", Mirror: true, Capabilities: all, Source: "berth.toml"},
				{Host: "v2path.example", Scheme: "https", Path: "/v2", Capabilities: all, Source: "berth.toml",
					creds: hosts["v2path.example"]},
			},
		},
		"_default serves hosts without an entry": {
			hosts:  map[string]config.RegistryHost{config.DefaultHost: {Mirrors: []string{"https://all.example"}}},
			domain: "quay.io",
			want: []Endpoint{
				{Host: "all.example", Scheme: "https", Path: "/v2", Mirror: true, Capabilities: all, Source: "berth.toml"},
				{Host: "quay.io", Scheme: "https", Path: "/v2", Capabilities: all, Source: "berth.toml"},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := tc.hosts
			if h == nil {
				h = hosts
			}
			got, err := (&Hosts{toml: h}).Endpoints(tc.domain)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	upstream := Endpoint{Host: "registry.example", creds: config.RegistryHost{Username: "cfg", Password: "cfgpw"}}
	mirror := Endpoint{Host: "127.0.0.1:5000", Mirror: true}
	hub := Endpoint{Host: "registry-1.docker.io"}
	for name, tc := range map[string]struct {
		ep   Endpoint
		auth *Auth
		want authn.AuthConfig
		err  error
	}{
		"no auth, no config: anonymous": {ep: mirror, want: authn.AuthConfig{}},
		"config credentials":            {ep: upstream, want: authn.AuthConfig{Username: "cfg", Password: "cfgpw"}},
		"CRI auth wins over config": {
			ep: upstream, auth: &Auth{Username: "u", Password: "p"},
			want: authn.AuthConfig{Username: "u", Password: "p"},
		},
		"CRI auth without server address goes to mirrors too": {
			ep: mirror, auth: &Auth{Username: "u", Password: "p"},
			want: authn.AuthConfig{Username: "u", Password: "p"},
		},
		"CRI auth for another server is not sent": {
			ep: mirror, auth: &Auth{Username: "u", Password: "p", ServerAddress: "registry.example"},
			want: authn.AuthConfig{},
		},
		"server address as a docker hub URL": {
			ep: hub, auth: &Auth{IdentityToken: "tok", ServerAddress: "https://index.docker.io/v1/"},
			want: authn.AuthConfig{IdentityToken: "tok"},
		},
		"auth field is decoded": {
			ep: mirror, auth: &Auth{Auth: "dXNlcjpwYXNz"}, // user:pass
			want: authn.AuthConfig{Username: "user", Password: "pass"},
		},
		"registry token": {
			ep: mirror, auth: &Auth{RegistryToken: "bearer"},
			want: authn.AuthConfig{RegistryToken: "bearer"},
		},
		"malformed auth field": {
			ep: mirror, auth: &Auth{Auth: "not base64!"},
			err: errdefs.ErrInvalidArgument,
		},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := (&Client{}).credentials(context.Background(), tc.ep, tc.auth)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
}
