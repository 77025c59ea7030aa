package registry

import (
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

// credentials picks the credential for one endpoint. The pull's own credential (CRI AuthConfig) wins when it
// has no server address (as in containerd, it then goes to every endpoint of the pull, mirrors included) or
// when its server address names the endpoint's host; otherwise the endpoint host's config entry is used. So a
// credential kubelet scoped to the upstream registry is never sent to a mirror.
func credentials(ep Endpoint, a *Auth) (authn.Authenticator, error) {
	if !a.empty() && (a.ServerAddress == "" || sameRegistry(a.ServerAddress, ep.Host)) {
		cfg, err := authConfig(a.Username, a.Password, a.Auth, a.IdentityToken)
		if err != nil {
			return nil, fmt.Errorf("auth config for %s: %w", ep.Host, err)
		}
		cfg.RegistryToken = a.RegistryToken
		return authn.FromConfig(cfg), nil
	}
	if h := ep.Config; hasCredentials(h) {
		cfg, err := authConfig(h.Username, h.Password, h.Auth, h.IdentityToken)
		if err != nil {
			return nil, fmt.Errorf("registry host %q credentials: %w", ep.Host, err)
		}
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
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
