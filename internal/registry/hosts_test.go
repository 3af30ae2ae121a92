package registry

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hosts(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		s := e.Host
		if e.Mirror {
			s = "mirror:" + s
		}
		if e.PlainHTTP {
			s += "+http"
		}
		if e.SkipVerify {
			s += "+skipverify"
		}
		out = append(out, s)
	}
	return out
}

func TestParseHostsOrderAndSchemes(t *testing.T) {
	raw := `
server = "https://registry-1.docker.io"
ca = "up.pem"

[host."https://z-mirror.example.com"]
  ca = ["/abs/a.pem", "rel.pem"]

[host."http://10.0.0.2:5000"]
  capabilities = ["pull", "resolve"]

[host."https://push-only.example.com"]
  capabilities = ["push"]

[host."a-mirror.example.com:8443"]
  skip_verify = true
`
	eps, err := ParseHosts("docker.io", []byte(raw), "/etc/berth/registries.d/docker.io")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(hosts(eps), " ")
	want := "mirror:z-mirror.example.com mirror:10.0.0.2:5000+http mirror:a-mirror.example.com:8443+skipverify registry-1.docker.io"
	if got != want {
		t.Errorf("endpoints %q, want %q (file order, push-only skipped, upstream last)", got, want)
	}
	if cas := eps[0].CAFiles; len(cas) != 2 || cas[0] != "/abs/a.pem" || cas[1] != "/etc/berth/registries.d/docker.io/rel.pem" {
		t.Errorf("mirror CAs %q", cas)
	}
	if cas := eps[3].CAFiles; len(cas) != 1 || cas[0] != "/etc/berth/registries.d/docker.io/up.pem" {
		t.Errorf("upstream CAs %q", cas)
	}
}

func TestParseHostsErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`server = `, "does not parse"},
		{`mirrors = ["x"]`, `unknown setting "mirrors"`},
		{`[host."ftp://x"]`, "scheme must be https or http"},
		{`[host."https://user:pw@x"]`, "user info"},
		{`[host."https://x/some/path"]`, "path"},
		{"[host.\"https://x\"]\nca = 3", "ca"},
	} {
		_, err := ParseHosts("example.com", []byte(tc.raw), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHosts(%q) = %v, want an error containing %q", tc.raw, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("error %q quotes user info", err)
		}
	}
}

func TestLoopback(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "127.5.6.7": true, "[::1]:5000": true, "::1": true,
		"10.0.0.1:5000": false, "192.168.1.1": false, "example.com": false, "localhost.example.com": false,
	} {
		if got := IsLoopback(h); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", h, got, want)
		}
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDirAndEndpoints(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "_default", "hosts.toml"), "[host.\"https://mirror.corp\"]\n")
	write(t, filepath.Join(dir, "docker.io", "hosts.toml"), "[host.\"http://127.0.0.1:5001\"]\n")
	write(t, filepath.Join(dir, "quay.io", "ca.crt"), "not used until a transport is built")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:pw:with:colons"))
	write(t, filepath.Join(dir, "config.json"), `{"auths": {
		"https://index.docker.io/v1/": {"auth": "`+auth+`"},
		"registry.example.com:5000": {"username": "bob", "password": "x", "identitytoken": "tok"}}}`)
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := c.Endpoints("index.docker.io")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hosts(eps), " "); got != "mirror:127.0.0.1:5001+http registry-1.docker.io" {
		t.Errorf("docker.io endpoints %q", got)
	}
	eps, err = c.Endpoints("ghcr.io")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hosts(eps), " "); got != "mirror:mirror.corp ghcr.io" {
		t.Errorf("ghcr.io endpoints (from _default) %q", got)
	}
	eps, err = c.Endpoints("127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hosts(eps), " "); got != "mirror:mirror.corp 127.0.0.1:5000+http" {
		t.Errorf("loopback endpoints %q (want plain HTTP allowed)", got)
	}
	if _, err := c.Endpoints("quay.io"); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("quay.io with a bad ca.crt: %v, want an error naming the CA bundle", err)
	}
	cr, ok := c.Credentials("docker.io")
	if !ok || cr.Username != "alice" || cr.Password != "pw:with:colons" {
		t.Errorf("docker.io credentials %v %v", cr.Username, ok)
	}
	if s := cr.String() + " " + cr.GoString(); strings.Contains(s, "pw:with") {
		t.Errorf("credentials print their password: %s", s)
	}
	cr, ok = c.Credentials("registry.example.com:5000")
	if !ok || cr.Username != "bob" || cr.IdentityToken != "tok" {
		t.Errorf("registry.example.com credentials %v %v", cr.Username, ok)
	}

	missing, err := Load(filepath.Join(dir, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	if eps, _ := missing.Endpoints("docker.io"); len(eps) != 1 || eps[0].Host != "registry-1.docker.io" {
		t.Errorf("no config dir: %v", hosts(eps))
	}
}

func TestBadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "config.json"), `{"auths": {"x.io": {"auth": "!!!secret!!!"}}}`)
	_, err := Load(dir)
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "x.io") {
		t.Errorf("bad auth entry: %v; want an error naming the entry and not its content", err)
	}
}

func TestHTTPGuard(t *testing.T) {
	c, _ := Load("")
	eps, err := c.Endpoints("10.1.2.3:5000")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://10.1.2.3:5000/v2/", nil)
	if _, err := eps[0].Transport.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("plain HTTP to a non-loopback registry: %v, want refused", err)
	}
}
