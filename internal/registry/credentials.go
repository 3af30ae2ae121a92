package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// dockerConfig is the part of docker's config.json berth reads.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// loadCredentials reads a docker config.json-style file. Keys may be a
// host[:port] or a URL ("https://index.docker.io/v1/" is Docker Hub).
// Errors never quote the file's content.
func loadCredentials(p string) (map[string]Credentials, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read registry credentials %s: %w", p, err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		// json's syntax errors carry an offset only, never content.
		return nil, errdefs.Invalid(fmt.Sprintf("registry credentials %s do not parse as a docker config.json: %v", p, err))
	}
	out := map[string]Credentials{}
	for key, a := range cfg.Auths {
		c, err := a.credentials()
		if err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("registry credentials %s, entry %q: %v", p, key, err))
		}
		out[canonicalHost(credentialsHost(key))] = c
	}
	return out, nil
}

// ParseAuth decodes a base64 "user:password" auth field.
func ParseAuth(auth string) (user, password string, err error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
	if err != nil {
		return "", "", fmt.Errorf("auth is not base64")
	}
	user, password, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", fmt.Errorf("auth is not base64 of user:password")
	}
	return user, password, nil
}

func (a dockerAuth) credentials() (Credentials, error) {
	c := Credentials{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if a.Auth != "" {
		u, p, err := ParseAuth(a.Auth)
		if err != nil {
			return Credentials{}, err
		}
		c.Username, c.Password = u, p
	}
	return c, nil
}

// credentialsHost takes the host out of a config.json key.
func credentialsHost(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil && u.Host != "" {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(key, "/")
	return host
}
