package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/errdefs"
)

// Auth is the credential a client sent with a pull (the CRI AuthConfig).
type Auth struct {
	Username string
	Password string
	// Auth is base64("username:password").
	Auth string
	// ServerAddress, when set, limits the credential to that registry host.
	ServerAddress string
	// IdentityToken is exchanged for a registry token (OAuth2 refresh token).
	IdentityToken string
	// RegistryToken is sent to the registry as a bearer token as is.
	RegistryToken string
}

func (a *Auth) empty() bool {
	return a == nil || a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// credentials picks the credential for one endpoint, first found:
//   - the pull's own (CRI AuthConfig), when it has no server address (as in containerd, it then goes to every
//     endpoint of the pull, mirrors included) or its server address names the endpoint's host;
//   - berth.toml's credentials of the endpoint's host (a mirror's own entry; the registry's for itself);
//   - registry.docker_config for the endpoint's host: its credential helper, else its auths entry.
//
// A mirror is never sent what is meant for the registry it mirrors, except the unscoped CRI credential.
func (c *Client) credentials(ctx context.Context, ep Endpoint, a *Auth) (authn.Authenticator, error) {
	if !a.empty() && (a.ServerAddress == "" || sameRegistry(a.ServerAddress, ep.Host)) {
		return fromAuth(ep.Host, a)
	}
	if h := ep.creds; hasCredentials(h) {
		cfg, err := authConfig(h.Username, h.Password, h.Auth, h.IdentityToken)
		if err != nil {
			return nil, fmt.Errorf("registry host %q credentials: %w", ep.Host, err)
		}
		return authn.FromConfig(cfg), nil
	}
	d, err := c.docker.lookup(ctx, ep.Host)
	if err != nil {
		return nil, err
	}
	if !d.empty() {
		return fromAuth(ep.Host, d)
	}
	return authn.Anonymous, nil
}

// CredentialSource says where ep's credential comes from when the pull sends none of its own, without running a
// helper: for `berthd config endpoints`.
func (c *Client) CredentialSource(ep Endpoint) string {
	if hasCredentials(ep.creds) {
		return "berth.toml"
	}
	if d := c.docker; d != nil {
		helper := d.helperFor(ep.Host)
		_, auths := d.auths[canonicalHost(ep.Host)]
		switch {
		case helper != "" && auths:
			return "docker-credential-" + helper + ", else " + d.file + " auths"
		case helper != "":
			return "docker-credential-" + helper
		case auths:
			return d.file + " auths"
		}
	}
	return "anonymous"
}

func fromAuth(host string, a *Auth) (authn.Authenticator, error) {
	cfg, err := authConfig(a.Username, a.Password, a.Auth, a.IdentityToken)
	if err != nil {
		return nil, fmt.Errorf("auth config for %s: %w", host, err)
	}
	cfg.RegistryToken = a.RegistryToken
	return authn.FromConfig(cfg), nil
}

func hasCredentials(h config.RegistryHost) bool {
	return h.Username != "" || h.Password != "" || h.Auth != "" || h.IdentityToken != ""
}

// authConfig decodes auth into username and password when those are not given: go-containerregistry exchanges
// only username+password (or an identity token) for bearer tokens.
func authConfig(user, pass, auth, identityToken string) (authn.AuthConfig, error) {
	if auth != "" && user == "" && pass == "" {
		b, err := base64.StdEncoding.DecodeString(auth)
		if err != nil {
			return authn.AuthConfig{}, errdefs.InvalidArgument("auth", "not base64: %v", err)
		}
		var ok bool
		if user, pass, ok = strings.Cut(string(b), ":"); !ok {
			return authn.AuthConfig{}, errdefs.InvalidArgument("auth", "not base64(\"username:password\")")
		}
	}
	return authn.AuthConfig{Username: user, Password: pass, IdentityToken: identityToken}, nil
}
