package registry

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// writeTree writes files (path relative to dir: contents) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHostsDirEndpoints(t *testing.T) {
	all := capAll
	for name, tc := range map[string]struct {
		files  map[string]string
		toml   map[string]config.RegistryHost
		domain string
		want   func(dir string) []Endpoint
	}{
		"hosts in file order, then server": {
			files: map[string]string{"docker.io/hosts.toml": `
server = "https://registry-1.docker.io"
[host."https://b.example"]
  capabilities = ["pull", "resolve"]
  ca = "b.pem"
[host."http://127.0.0.1:5000/cache"]
  capabilities = ["pull"]
[host."https://a.example:8443"]
  client = [["/c.pem", "/k.pem"], "both.pem"]
  skip_verify = true
  override_path = true
  [host."https://a.example:8443".header]
    x-custom = "1"
    x-list = ["a", "b"]
`},
			domain: "docker.io",
			want: func(dir string) []Endpoint {
				f := filepath.Join(dir, "docker.io/hosts.toml")
				return []Endpoint{
					{Host: "b.example", Scheme: "https", Path: "/v2", Mirror: true, Capabilities: CapPull | CapResolve,
						TLS: TLS{CAFiles: []string{filepath.Join(dir, "docker.io/b.pem")}}, Source: f},
					{Host: "127.0.0.1:5000", Scheme: "http", Path: "/cache/v2", Mirror: true, Capabilities: CapPull, Source: f},
					{Host: "a.example:8443", Scheme: "https", Path: "", Mirror: true, Capabilities: all,
						TLS:    TLS{SkipVerify: true, Clients: [][2]string{{"/c.pem", "/k.pem"}, {filepath.Join(dir, "docker.io/both.pem"), ""}}},
						Header: http.Header{"X-Custom": {"1"}, "X-List": {"a", "b"}}, Source: f},
					{Host: "registry-1.docker.io", Scheme: "https", Path: "/v2", Capabilities: all, Source: f},
				}
			},
		},
		"no server: the registry itself comes last, with the root's TLS": {
			files: map[string]string{"r.example/hosts.toml": `
ca = ["/a.pem", "/b.pem"]
[host."https://m.example/v2"]
`},
			domain: "r.example",
			want: func(dir string) []Endpoint {
				f := filepath.Join(dir, "r.example/hosts.toml")
				return []Endpoint{
					{Host: "m.example", Scheme: "https", Path: "/v2", Mirror: true, Capabilities: all, Source: f},
					{Host: "r.example", Scheme: "https", Path: "/v2", Capabilities: all, TLS: TLS{CAFiles: []string{"/a.pem", "/b.pem"}}, Source: f},
				}
			},
		},
		"server elsewhere is a mirror: the registry is never contacted": {
			files:  map[string]string{"r.example/hosts.toml": `server = "https://m.example/prefix"`},
			domain: "r.example",
			want: func(dir string) []Endpoint {
				return []Endpoint{{Host: "m.example", Scheme: "https", Path: "/prefix/v2", Mirror: true, Capabilities: all,
					Source: filepath.Join(dir, "r.example/hosts.toml")}}
			},
		},
		"host_port_ dir names host:port, and wins over host:port": {
			files: map[string]string{
				"127.0.0.1_5001_/hosts.toml": `skip_verify = true`,
				"127.0.0.1:5001/hosts.toml":  `server = "https://wrong.example"`,
			},
			domain: "127.0.0.1:5001",
			want: func(dir string) []Endpoint {
				return []Endpoint{{Host: "127.0.0.1:5001", Scheme: "https", Path: "/v2", Capabilities: all,
					TLS: TLS{SkipVerify: true}, Source: filepath.Join(dir, "127.0.0.1_5001_/hosts.toml")}}
			},
		},
		"loopback without TLS settings stays http": {
			files:  map[string]string{"localhost:5000/hosts.toml": `capabilities = ["pull", "resolve"]`},
			domain: "localhost:5000",
			want: func(dir string) []Endpoint {
				return []Endpoint{{Host: "localhost:5000", Scheme: "http", Path: "/v2", Capabilities: CapPull | CapResolve,
					Source: filepath.Join(dir, "localhost:5000/hosts.toml")}}
			},
		},
		"docker cert files": {
			files:  map[string]string{"r.example/ca.crt": "", "r.example/client.cert": "", "r.example/client.key": "", "r.example/solo.cert": ""},
			domain: "r.example",
			want: func(dir string) []Endpoint {
				d := filepath.Join(dir, "r.example")
				return []Endpoint{{Host: "r.example", Scheme: "https", Path: "/v2", Capabilities: all, Source: d,
					TLS: TLS{CAFiles: []string{filepath.Join(d, "ca.crt")}, Clients: [][2]string{
						{filepath.Join(d, "client.cert"), filepath.Join(d, "client.key")}, {filepath.Join(d, "solo.cert"), ""}}}}}
			},
		},
		"_default dir serves hosts without their own, before berth.toml's _default": {
			files:  map[string]string{"_default/hosts.toml": `[host."https://all.example"]`},
			toml:   map[string]config.RegistryHost{config.DefaultHost: {Mirrors: []string{"https://other.example"}}},
			domain: "quay.io",
			want: func(dir string) []Endpoint {
				f := filepath.Join(dir, "_default/hosts.toml")
				return []Endpoint{
					{Host: "all.example", Scheme: "https", Path: "/v2", Mirror: true, Capabilities: all, Source: f},
					{Host: "quay.io", Scheme: "https", Path: "/v2", Capabilities: all, Source: f},
				}
			},
		},
		"berth.toml's entry of the host wins over the _default dir; mirror credentials come from berth.toml": {
			files:  map[string]string{"_default/hosts.toml": `[host."https://all.example"]`, "q.example/hosts.toml": `[host."https://m.example"]`},
			toml:   map[string]config.RegistryHost{"quay.io": {}, "m.example": {Username: "u", Password: "p"}},
			domain: "q.example",
			want: func(dir string) []Endpoint {
				f := filepath.Join(dir, "q.example/hosts.toml")
				return []Endpoint{
					{Host: "m.example", Scheme: "https", Path: "/v2", Mirror: true, Capabilities: all, Source: f,
						creds: config.RegistryHost{Username: "u", Password: "p"}},
					{Host: "q.example", Scheme: "https", Path: "/v2", Capabilities: all, Source: f},
				}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			d, err := loadHostsDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := (&Hosts{toml: tc.toml, dir: d}).Endpoints(tc.domain)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want(dir); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestHostsDirRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		want string
	}{
		"unknown key":         {`[host."https://m.example"]` + "\nmirror_only = true", `host."https://m.example".mirror_only: unknown key`},
		"unknown capability":  {`capabilities = ["pull", "fetch"]`, `capabilities: "fetch" is not one of pull, resolve, push`},
		"ca not a string":     {`ca = 3`, `ca: want a string or a list of strings`},
		"client bad pair":     {`client = [["/a.pem"]]`, `client: [/a.pem] is not a [cert, key] pair`},
		"client bad type":     {`client = 1`, `client: want a file`},
		"server with query":   {`server = "https://m.example/?a=b"`, `server "https://m.example/?a=b": want http(s)://host[:port][/path]`},
		"override_path alone": {`override_path = true`, `override_path: set without server`},
		"skip_verify on http": {`[host."http://m.example"]` + "\nskip_verify = true", `host."http://m.example": skip_verify or client set for an http:// server`},
		"bad dial_timeout":    {`dial_timeout = "soon"`, `dial_timeout: "soon" is not a duration`},
		"not toml":            {`server = `, `hosts.toml:`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"r.example/hosts.toml": tc.file})
			_, err := loadHostsDir(dir)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			file := filepath.Join(dir, "r.example/hosts.toml")
			if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to name %s and say %q", err, file, tc.want)
			}
		})
	}
}

func TestLoadRefusals(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"certs.d/r.example/hosts.toml": `[host."https://m.example"]` + "\nca = \"bad.pem\"",
		"certs.d/r.example/bad.pem":    "not a certificate",
		"certs.d/both.example/ca.crt":  "",
		"config.json":                  `{"auths": {"x.example": {"auth": "%%%"}}}`,
	})
	_, err := Load(config.RegistryConfig{ConfigPath: filepath.Join(dir, "certs.d"), DockerConfig: filepath.Join(dir, "config.json"),
		Hosts: map[string]config.RegistryHost{"both.example": {}}}, nil)
	for _, want := range []string{
		filepath.Join(dir, "certs.d/r.example/hosts.toml") + ": ca " + filepath.Join(dir, "certs.d/r.example/bad.pem") + ": no PEM certificate",
		`registry host "both.example" is configured both in [registry.hosts."both.example"] and in ` + filepath.Join(dir, "certs.d/both.example"),
		`registry.docker_config: ` + filepath.Join(dir, "config.json") + `: auths."x.example".auth: auth: not base64`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("err = %v, want InvalidArgument", err)
	}
}

// registry.config_path may list dirs, as containerd's: for each host the first dir that has it wins.
func TestHostsDirs(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, map[string]string{"r.example/hosts.toml": `server = "https://from-a.example"`})
	writeTree(t, b, map[string]string{"r.example/hosts.toml": `server = "https://from-b.example"`, "q.example/ca.crt": ""})
	d, err := loadHostsDirs(a + ":" + filepath.Join(a, "missing") + ":" + b)
	if err != nil {
		t.Fatal(err)
	}
	if got := d["r.example"].eps[0].Host; got != "from-a.example" {
		t.Errorf("r.example from %s, want the first dir's", got)
	}
	if got := d["q.example"].source; got != filepath.Join(b, "q.example") {
		t.Errorf("q.example from %q, want the second dir", got)
	}
}
