package registry

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestDockerConfigLookup(t *testing.T) {
	bin := t.TempDir()
	// docker-credential-test knows one server; -slow never answers; -loud prints without end.
	writeTree(t, bin, map[string]string{
		"docker-credential-test": `#!/bin/sh
read server
case "$server" in
  helper.example) echo '{"ServerURL":"helper.example","Username":"hu","Secret":"hs"}' ;;
  token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"tok"}' ;;
  https://index.docker.io/v1/) echo '{"Username":"hub","Secret":"hubpw"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
		"docker-credential-slow": "#!/bin/sh\nexec sleep 60\n",
		"docker-credential-loud": "#!/bin/sh\nexec yes\n",
		"docker-credential-bad":  "#!/bin/sh\necho 'keyring locked' >&2; exit 3\n",
	})
	for _, f := range []string{"test", "slow", "loud", "bad"} {
		os.Chmod(filepath.Join(bin, "docker-credential-"+f), 0o755)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.json")
	writeTree(t, dir, map[string]string{"config.json": `{
  "auths": {
    "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
    "http://auths.example:5000": {"username": "au", "password": "ap"},
    "helper.example": {"username": "unused"},
    "id.example": {"identitytoken": "idt"}
  },
  "credHelpers": {"helper.example": "test", "token.example": "test", "slow.example": "slow",
    "loud.example": "loud", "bad.example": "bad", "other.example": "test"}
}`})
	c, err := loadDockerConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		host string
		want *Auth
		err  error
	}{
		"auths by URL key":                  {host: "auths.example:5000", want: &Auth{Username: "au", Password: "ap"}},
		"docker hub's v1 key":               {host: "registry-1.docker.io", want: &Auth{Auth: "aHViOnB3"}},
		"identity token":                    {host: "id.example", want: &Auth{IdentityToken: "idt"}},
		"helper first":                      {host: "helper.example", want: &Auth{Username: "hu", Password: "hs"}},
		"helper token":                      {host: "token.example", want: &Auth{IdentityToken: "tok"}},
		"helper knows nothing, no auths":    {host: "other.example"},
		"unknown host":                      {host: "nobody.example"},
		"a helper that hangs is cut off":    {host: "slow.example", err: errdefs.ErrUnavailable},
		"a helper that floods is cut off":   {host: "loud.example", err: errdefs.ErrUnauthenticated},
		"a failing helper fails the lookup": {host: "bad.example", err: errdefs.ErrUnauthenticated},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.host == "slow.example" {
				ctx, cancel := context.WithTimeout(context.Background(), 200*1e6)
				defer cancel()
				_, err := c.lookup(ctx, tc.host)
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			got, err := c.lookup(context.Background(), tc.host)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), cfgFile) {
					t.Fatalf("err = %v, want %v naming %s", err, tc.err, cfgFile)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDockerConfigCredsStore: the store helper answers on stdout; a warning it prints on stderr is not part of the
// answer (as docker reads it).
func TestDockerConfigCredsStore(t *testing.T) {
	bin := t.TempDir()
	writeTree(t, bin, map[string]string{"docker-credential-store": "#!/bin/sh\necho 'warning: session bus absent' >&2\necho '{\"Username\":\"s\",\"Secret\":\"p\"}'\n"})
	os.Chmod(filepath.Join(bin, "docker-credential-store"), 0o755)
	t.Setenv("PATH", bin)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"config.json": `{"credsStore": "store", "auths": {"a.example": {}}}`})
	c, err := loadDockerConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.lookup(context.Background(), "a.example")
	if err != nil || !reflect.DeepEqual(got, &Auth{Username: "s", Password: "p"}) {
		t.Fatalf("got %+v, %v; want the store's credential", got, err)
	}
}

func TestEndpointTransport(t *testing.T) {
	for name, tc := range map[string]struct {
		ep      Endpoint
		ns      string
		url     string
		wantURL string
		wantHdr string
	}{
		"default root":                {ep: Endpoint{Host: "m:5000", Scheme: "http", Path: "/v2"}, url: "https://m:5000/v2/library/a/manifests/1", wantURL: "http://m:5000/v2/library/a/manifests/1"},
		"mirror path":                 {ep: Endpoint{Host: "m", Scheme: "https", Path: "/cache/v2"}, url: "https://m/v2/", wantURL: "https://m/cache/v2/"},
		"override_path":               {ep: Endpoint{Host: "m", Scheme: "https", Path: "/api"}, url: "https://m/v2/a/blobs/sha256:1", wantURL: "https://m/api/a/blobs/sha256:1"},
		"other hosts pass":            {ep: Endpoint{Host: "m", Scheme: "http", Path: "/x/v2"}, url: "https://auth.example/v2/token", wantURL: "https://auth.example/v2/token"},
		"a /v2x path is not /v2":      {ep: Endpoint{Host: "m", Scheme: "https", Path: "/x/v2"}, url: "https://m/v2x", wantURL: "https://m/v2x"},
		"a mirror names its registry": {ep: Endpoint{Host: "m", Scheme: "https", Path: "/v2"}, ns: "docker.io", url: "https://m/v2/library/a/manifests/1", wantURL: "https://m/v2/library/a/manifests/1?ns=docker.io"},
		"not on the ping":             {ep: Endpoint{Host: "m", Scheme: "https", Path: "/v2"}, ns: "docker.io", url: "https://m/v2/", wantURL: "https://m/v2/"},
		"headers":                     {ep: Endpoint{Host: "m", Scheme: "https", Path: "/v2", Header: http.Header{"X-A": {"1"}}}, url: "https://m/v2/", wantURL: "https://m/v2/", wantHdr: "1"},
	} {
		t.Run(name, func(t *testing.T) {
			var got *http.Request
			rt := &endpointTransport{ep: tc.ep, ns: tc.ns, inner: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			})}
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			if got.URL.String() != tc.wantURL || got.Header.Get("X-A") != tc.wantHdr {
				t.Errorf("sent %s (X-A %q), want %s (X-A %q)", got.URL, got.Header.Get("X-A"), tc.wantURL, tc.wantHdr)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestDockerConfigMissingHelper: a helper berthd cannot find is refused when the config is read, naming the key,
// rather than failing every pull of the hosts it serves.
func TestDockerConfigMissingHelper(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for name, cfg := range map[string]string{
		"credsStore":  `{"credsStore": "absent"}`,
		"credHelpers": `{"credHelpers": {"a.example": "absent"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"config.json": cfg})
			_, err := loadDockerConfig(filepath.Join(dir, "config.json"))
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "docker-credential-absent") {
				t.Fatalf("err = %v, want a refusal naming %s and docker-credential-absent", err, name)
			}
		})
	}
}
