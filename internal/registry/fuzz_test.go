package registry

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

// FuzzParseHosts: any hosts.toml either fails as InvalidArgument or gives
// endpoints with a host, the upstream last, and a user:password written
// into a host URL never appears in an error.
func FuzzParseHosts(f *testing.F) {
	f.Add("docker.io", []byte("server = \"https://registry-1.docker.io\"\n[host.\"https://mirror.example.com\"]\ncapabilities = [\"pull\", \"resolve\"]\nca = \"ca.pem\"\n"), "")
	f.Add("127.0.0.1:5000", []byte("[host.\"http://127.0.0.1:5001\"]\nskip_verify = true\n[host.\"m2:443\"]\nca = [\"/a\", \"b\"]\n"), "")
	f.Add("_default", []byte("[host.\"https://mirror\"]\n"), "")
	f.Add("r", []byte("[host.\"https://user:PASSWORD@mirror\"]\n"), "PASSWORD")
	f.Add("r", []byte("server = \"ftp://x\"\n"), "")
	f.Add("r", []byte("[host]\nx = 1\n"), "")
	f.Fuzz(func(t *testing.T, registry string, raw []byte, secret string) {
		eps, err := ParseHosts(registry, raw, "/etc/berth/registries.d/r")
		if err != nil {
			if !errdefs.IsInvalid(err) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			// A secret given as URL user info is never echoed.
			if len(secret) >= 6 && strings.Contains(string(raw), ":"+secret+"@") && !strings.Contains(registry, secret) &&
				strings.Count(string(raw), secret) == 1 && strings.Contains(err.Error(), secret) {
				t.Fatalf("error echoes the password: %v", err)
			}
			return
		}
		for i, ep := range eps {
			if ep.Host == "" {
				t.Fatalf("endpoint %d has no host: %+v", i, ep)
			}
			if registry != defaultHostDir && ep.Mirror == (i == len(eps)-1) {
				t.Fatalf("endpoint %d of %d: mirror=%v; the upstream must come last", i, len(eps), ep.Mirror)
			}
			for _, ca := range ep.CAFiles {
				if !filepath.IsAbs(ca) {
					t.Fatalf("CA path %q is relative", ca)
				}
			}
		}
	})
}

// FuzzCredentials: any credentials file loads or fails without quoting a
// password, auth or token from it.
func FuzzCredentials(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("me:hunter22")) + `"}}}`))
	f.Add([]byte(`{"auths":{"127.0.0.1:5000":{"username":"u","password":"p4ssw0rd!"},"q.io":{"identitytoken":"tok-123456"}}}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"bm90LWEtcGFpcg=="}}}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"%%%secret%%%"}}}`))
	f.Add([]byte(`{"auths":`))
	dir := f.TempDir()
	p := filepath.Join(dir, "config.json")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		creds, err := loadCredentials(p)
		if err == nil {
			for h := range creds {
				if h != canonicalHost(h) {
					t.Fatalf("host %q is not canonical", h)
				}
			}
			return
		}
		if !errdefs.IsInvalid(err) {
			t.Fatalf("error %v is not InvalidArgument", err)
		}
		var cfg dockerConfig
		if json.Unmarshal(raw, &cfg) != nil {
			return
		}
		var keys string
		for k := range cfg.Auths {
			keys += k + "\x00"
		}
		for _, a := range cfg.Auths {
			for _, s := range []string{a.Password, a.Auth, a.IdentityToken, a.RegistryToken} {
				if len(s) >= 6 && !strings.Contains(keys, s) && !strings.Contains(p, s) && strings.Contains(err.Error(), s) {
					t.Fatalf("error quotes a secret %q: %v", s, err)
				}
			}
		}
	})
}

// FuzzParseAuth: a decoded user:password encodes back to the same pair.
func FuzzParseAuth(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte("user:pass")))
	f.Add(base64.StdEncoding.EncodeToString([]byte(":")))
	f.Add("not base64")
	f.Fuzz(func(t *testing.T, auth string) {
		u, p, err := ParseAuth(auth)
		if err != nil {
			if len(auth) >= 6 && !strings.Contains("auth is not base64 of user:password", auth) && strings.Contains(err.Error(), auth) {
				t.Fatalf("error quotes the auth: %v", err)
			}
			return
		}
		u2, p2, err := ParseAuth(base64.StdEncoding.EncodeToString([]byte(u + ":" + p)))
		if err != nil || u2 != u || p2 != p {
			t.Fatalf("round trip of %q:%q gave %q:%q %v", u, p, u2, p2, err)
		}
	})
}
