package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/tail"
)

const (
	// helperTimeout bounds one docker-credential-<name> get: the helpers answer from a file or a keyring.
	helperTimeout = 10 * time.Second
	// maxHelperOutput bounds what a helper may print; an answer is a few hundred bytes.
	maxHelperOutput = 64 << 10
	// maxDockerConfig bounds config.json.
	maxDockerConfig = 4 << 20
)

// dockerConfig is what berth reads of a docker config.json: credentials by registry, and the helpers that
// hold them.
type dockerConfig struct {
	file        string
	auths       map[string]Auth   // by canonical host
	credHelpers map[string]string // by canonical host: helper name
	credsStore  string            // helper for every host without its own
}

type dockerConfigFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	} `json:"auths"`
	CredHelpers map[string]string `json:"credHelpers"`
	CredsStore  string            `json:"credsStore"`
}

// loadDockerConfig reads file; "" is none. Errors name the file and the entry.
func loadDockerConfig(file string) (*dockerConfig, error) {
	if file == "" {
		return nil, nil
	}
	b, err := readBounded(file, maxDockerConfig)
	if err != nil {
		return nil, fmt.Errorf("registry.docker_config: %w", err)
	}
	var f dockerConfigFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("registry.docker_config: %s: %v: %w", file, err, errdefs.ErrInvalidArgument)
	}
	c := &dockerConfig{file: file, auths: map[string]Auth{}, credHelpers: map[string]string{}, credsStore: f.CredsStore}
	for key, a := range f.Auths {
		entry := Auth{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			if _, err := authConfig("", "", a.Auth, ""); err != nil {
				return nil, fmt.Errorf("registry.docker_config: %s: auths.%q.auth: %w", file, key, err)
			}
		}
		c.auths[canonicalHost(hostOf(key))] = entry
	}
	for key, helper := range f.CredHelpers {
		if err := checkHelperName(helper); err != nil {
			return nil, fmt.Errorf("registry.docker_config: %s: credHelpers.%q: %w", file, key, err)
		}
		c.credHelpers[canonicalHost(hostOf(key))] = helper
	}
	if f.CredsStore != "" {
		if err := checkHelperName(f.CredsStore); err != nil {
			return nil, fmt.Errorf("registry.docker_config: %s: credsStore: %w", file, err)
		}
	}
	return c, nil
}

// checkHelperName refuses a name that is not one program name, and a helper berthd cannot find: a missing helper
// would fail every pull of every host it serves, so it is refused when the configuration is read.
func checkHelperName(name string) error {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("%q is not a credential helper name: %w", name, errdefs.ErrInvalidArgument)
	}
	if _, err := exec.LookPath("docker-credential-" + name); err != nil {
		return fmt.Errorf("credential helper %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// helperFor is the helper that holds host's credentials: its credHelpers entry, else credsStore; "" for none.
func (c *dockerConfig) helperFor(host string) string {
	if h := c.credHelpers[canonicalHost(host)]; h != "" {
		return h
	}
	return c.credsStore
}

// lookup returns host's credential: from its helper (credHelpers, else credsStore) when one is configured and
// knows host, else from auths; nil when there is none.
func (c *dockerConfig) lookup(ctx context.Context, host string) (*Auth, error) {
	if c == nil {
		return nil, nil
	}
	key := canonicalHost(host)
	if helper := c.helperFor(host); helper != "" {
		a, err := runHelper(ctx, helper, helperServer(host))
		if err != nil {
			return nil, fmt.Errorf("registry.docker_config %s: %w", c.file, err)
		}
		if a != nil {
			return a, nil
		}
	}
	if a, ok := c.auths[key]; ok {
		return &a, nil
	}
	return nil, nil
}

// helperServer is the server name a helper is asked about: what `docker login` stores, the host, except for
// Docker Hub, which docker keeps under its v1 URL.
func helperServer(host string) string {
	if canonicalHost(host) == dockerHubHost {
		return "https://index.docker.io/v1/"
	}
	return host
}

// helperNotFound is what helpers print when they hold nothing for a server (docker-credential-helpers'
// credentials.errCredentialsNotFoundMessage).
const helperNotFound = "credentials not found in native keychain"

// runHelper runs `docker-credential-<name> get` with server on stdin, as docker does, bounded in time and output.
// No credential for server is (nil, nil).
func runHelper(ctx context.Context, name, server string) (*Auth, error) {
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	bin := "docker-credential-" + name
	cmd := exec.CommandContext(ctx, bin, "get")
	cmd.Stdin = strings.NewReader(server)
	// The answer is stdout alone, as docker reads it: a helper may warn on stderr and still answer.
	out := limitedBuffer{max: maxHelperOutput, full: cancel}
	errOut := tail.New(tail.MessageSize)
	cmd.Stdout, cmd.Stderr = &out, errOut
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	text := bytes.TrimSpace(out.buf.Bytes())
	if out.truncated {
		return nil, fmt.Errorf("%s get %s: more than %d bytes of output: %w", bin, server, maxHelperOutput,
			errdefs.ErrUnauthenticated)
	}
	if err != nil {
		if strings.Contains(string(text), helperNotFound) || strings.Contains(errOut.String(), helperNotFound) {
			return nil, nil
		}
		if len(text) == 0 {
			text = bytes.TrimSpace(errOut.Bytes())
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s get %s: no answer within %v: %w", bin, server, helperTimeout, errdefs.ErrUnavailable)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s get %s: %v: %q: %w", bin, server, err, firstLine(text), errdefs.ErrUnauthenticated)
		}
		return nil, fmt.Errorf("%s get %s: %v: %w", bin, server, err, errdefs.ErrFailedPrecondition)
	}
	var resp struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(text, &resp); err != nil {
		return nil, fmt.Errorf("%s get %s: output is not JSON: %w", bin, server, errdefs.ErrUnauthenticated)
	}
	if resp.Username == "<token>" { // how helpers hold an identity token (docker's tokenUsername)
		return &Auth{IdentityToken: resp.Secret}, nil
	}
	return &Auth{Username: resp.Username, Password: resp.Secret}, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// limitedBuffer keeps the first max bytes written; past them it calls full (which kills the helper) and drops the
// rest, so that a runaway helper can neither grow berthd nor hold the pull until the timeout.
type limitedBuffer struct {
	buf       bytes.Buffer
	max       int
	full      func()
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		if !b.truncated {
			b.truncated = true
			b.full()
		}
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}
