// Package registry holds berth's per-registry host configuration: which
// endpoints (mirrors, then the upstream) a pull of a registry's image tries,
// how each is reached (TLS with which CAs, or plain HTTP), and the fallback
// credentials from a docker config.json-style file. It reads the directory
// images.registry_config_dir names; see docs/images.md for the format.
//
// The registry client itself is go-containerregistry; this package only
// turns configuration into endpoints and http transports for it.
package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/berth-project/berth/internal/errdefs"
)

// DefaultDir is the host configuration directory when none is configured.
const DefaultDir = "/etc/berth/registries.d"

// hostsFile is the name of the per-registry file inside <dir>/<registry>/.
const hostsFile = "hosts.toml"

// defaultHostDir holds the settings for registries that have no dir of
// their own, as in containerd.
const defaultHostDir = "_default"

// credentialsFile is the docker config.json-style credentials file in dir.
const credentialsFile = "config.json"

// Docker Hub's names: what references say, and where its API is served.
const (
	dockerHub         = "docker.io"
	dockerHubUpstream = "registry-1.docker.io"
)

// Endpoint is one place a registry's content can be fetched from.
type Endpoint struct {
	// Host is host[:port] to contact.
	Host string
	// Mirror is true for a configured mirror, false for the upstream.
	Mirror bool
	// PlainHTTP allows (and prefers) plain HTTP: hosts configured with an
	// http:// URL, and loopback registries (which, as in docker and
	// containerd, are tried with HTTPS first and then HTTP).
	PlainHTTP bool
	// SkipVerify disables TLS certificate verification.
	SkipVerify bool
	// CAFiles are PEM bundles trusted for this endpoint in addition to the
	// system roots.
	CAFiles []string
	// Transport reaches this endpoint (TLS roots set up), shared by all
	// pulls so that connections are reused.
	Transport http.RoundTripper
}

// String names the endpoint for logs and errors.
func (e Endpoint) String() string {
	kind := "upstream"
	if e.Mirror {
		kind = "mirror"
	}
	return kind + " " + e.Host
}

// hostsTOML is the content of a hosts.toml.
type hostsTOML struct {
	// Server is the upstream URL; default https://<registry>.
	Server     string   `toml:"server"`
	CA         caList   `toml:"ca"`
	SkipVerify bool     `toml:"skip_verify"`
	Host       hostsMap `toml:"host"`
}

type hostsMap map[string]hostTOML

type hostTOML struct {
	CA         caList `toml:"ca"`
	SkipVerify bool   `toml:"skip_verify"`
	// Capabilities as in containerd; berth only pulls, so a mirror
	// without "pull" is skipped.
	Capabilities []string `toml:"capabilities"`
}

// caList accepts a single path or a list of paths.
type caList []string

func (c *caList) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*c = caList{x}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("ca: want a path or a list of paths, got %v", e)
			}
			*c = append(*c, s)
		}
	default:
		return fmt.Errorf("ca: want a path or a list of paths, got %T", v)
	}
	return nil
}

// Config is a loaded registry host configuration. It is immutable and safe
// for concurrent use.
type Config struct {
	dir   string
	hosts map[string][]Endpoint // by registry name as it appears in references
	creds map[string]Credentials

	mu         sync.Mutex
	transports map[string]http.RoundTripper // built lazily, by endpoint key
}

// Credentials are a user's credentials for a registry, as in a docker
// config.json entry. String never shows the secrets.
type Credentials struct {
	Username      string
	Password      string
	IdentityToken string
	RegistryToken string
}

func (c Credentials) String() string { return "credentials for " + c.Username + " (redacted)" }

// GoString keeps %#v from printing secrets too.
func (c Credentials) GoString() string { return c.String() }

// Empty reports whether c holds nothing.
func (c Credentials) Empty() bool { return c == Credentials{} }

// Load reads the host configuration under dir: <dir>/<registry>/hosts.toml
// (and *.crt CA files next to it), <dir>/_default/hosts.toml for registries
// without a dir, and <dir>/config.json for credentials. A missing dir is an
// empty configuration; a file that does not parse is an error naming it.
func Load(dir string) (*Config, error) {
	c := &Config{dir: dir, hosts: map[string][]Endpoint{}, creds: map[string]Credentials{}, transports: map[string]http.RoundTripper{}}
	if dir == "" {
		return c, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registry config dir %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Name() == credentialsFile {
			if c.creds, err = loadCredentials(p); err != nil {
				return nil, err
			}
			continue
		}
		if !e.IsDir() {
			continue
		}
		registry := e.Name()
		eps, err := loadHostDir(p, registry)
		if err != nil {
			return nil, err
		}
		c.hosts[registry] = eps
	}
	return c, nil
}

// Dir is the directory the configuration came from.
func (c *Config) Dir() string { return c.dir }

// loadHostDir reads one <dir>/<registry>/ directory.
func loadHostDir(dir, registry string) ([]Endpoint, error) {
	var extraCAs []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read registry host dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".crt") {
			// Docker's certs.d convention: CA certificates for the registry.
			extraCAs = append(extraCAs, filepath.Join(dir, e.Name()))
		}
	}
	p := filepath.Join(dir, hostsFile)
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		if registry == defaultHostDir {
			return nil, nil
		}
		up, err := upstream(registry, "", nil, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		up.CAFiles = append(up.CAFiles, extraCAs...)
		return []Endpoint{up}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	eps, err := ParseHosts(registry, raw, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	for i := range eps {
		if !eps[i].Mirror {
			eps[i].CAFiles = append(eps[i].CAFiles, extraCAs...)
		}
	}
	return eps, nil
}

// ParseHosts parses the hosts.toml of registry: the mirrors in the order
// the file lists them, then the upstream. Relative CA paths are taken
// relative to base. For the "_default" registry there is no upstream (each
// registry's own is appended when it is used).
func ParseHosts(registry string, raw []byte, base string) ([]Endpoint, error) {
	var f hostsTOML
	md, err := toml.Decode(string(raw), &f)
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("does not parse: %v", err))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, errdefs.Invalid(fmt.Sprintf("unknown setting %q", und[0].String()))
	}
	// Map order is lost in decoding; the file's order of [host."..."]
	// tables is the order mirrors are tried in.
	var order []string
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == "host" && !slices.Contains(order, k[1]) {
			order = append(order, k[1])
		}
	}
	var eps []Endpoint
	for _, u := range order {
		h := f.Host[u]
		if len(h.Capabilities) > 0 && !slices.Contains(h.Capabilities, "pull") {
			continue
		}
		ep, err := endpointFromURL(u, true)
		if err != nil {
			return nil, err
		}
		ep.SkipVerify = h.SkipVerify
		ep.CAFiles = absAll(h.CA, base)
		eps = append(eps, ep)
	}
	if registry == defaultHostDir {
		if f.Server != "" {
			return nil, errdefs.Invalid(`"server" has no meaning in _default/hosts.toml: each registry is its own upstream`)
		}
		return eps, nil
	}
	up, err := upstream(registry, f.Server, absAll(f.CA, base), f.SkipVerify)
	if err != nil {
		return nil, err
	}
	return append(eps, up), nil
}

func absAll(paths []string, base string) []string {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) && base != "" {
			p = filepath.Join(base, p)
		}
		out = append(out, p)
	}
	return out
}

// upstream is the registry's own endpoint: server when set, else the
// registry host itself (Docker Hub's API host for docker.io).
func upstream(registry, server string, cas []string, skipVerify bool) (Endpoint, error) {
	if server == "" {
		host := registry
		if host == dockerHub {
			host = dockerHubUpstream
		}
		ep := Endpoint{Host: host, PlainHTTP: IsLoopback(host)}
		ep.CAFiles, ep.SkipVerify = cas, skipVerify
		return ep, nil
	}
	ep, err := endpointFromURL(server, false)
	if err != nil {
		return Endpoint{}, err
	}
	ep.CAFiles, ep.SkipVerify = cas, skipVerify
	return ep, nil
}

// endpointFromURL parses "https://host[:port]" or "http://host[:port]"
// (plain HTTP); a bare host means https.
func endpointFromURL(s string, mirror bool) (Endpoint, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		if strings.Contains(raw, "@") {
			raw = "(redacted: it holds an @)"
		}
		return Endpoint{}, errdefs.Invalid(fmt.Sprintf("host %q is not a URL like https://mirror.example.com:5000", raw))
	}
	if u.User != nil || u.RawQuery != "" {
		// Never echo what may be a password.
		return Endpoint{}, errdefs.Invalid(fmt.Sprintf("host %q: user info and queries are not allowed; put credentials in %s", u.Scheme+"://"+u.Host, credentialsFile))
	}
	if u.Path != "" && u.Path != "/" && u.Path != "/v2" && u.Path != "/v2/" {
		return Endpoint{}, errdefs.Invalid(fmt.Sprintf("host %q: a path other than /v2 is not supported", raw))
	}
	ep := Endpoint{Host: u.Host, Mirror: mirror}
	switch u.Scheme {
	case "https":
		ep.PlainHTTP = IsLoopback(u.Host)
	case "http":
		ep.PlainHTTP = true
	default:
		return Endpoint{}, errdefs.Invalid(fmt.Sprintf("host %q: scheme must be https or http", raw))
	}
	return ep, nil
}

// IsLoopback reports whether host[:port] names this machine: localhost,
// 127.0.0.0/8 or ::1. Such registries may be reached over plain HTTP
// without configuration, as in docker and containerd.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Endpoints returns where to fetch registry's content from, in order: its
// mirrors, then _default's mirrors, then the upstream. registry is the
// host[:port] of a reference ("docker.io" for Docker Hub; "index.docker.io"
// is taken as docker.io). Every endpoint has a Transport.
func (c *Config) Endpoints(registry string) ([]Endpoint, error) {
	registry = canonicalHost(registry)
	var eps []Endpoint
	own, ok := c.hosts[registry]
	if ok {
		eps = append(eps, own...)
	} else {
		eps = append(eps, c.hosts[defaultHostDir]...)
		up, err := upstream(registry, "", nil, false)
		if err != nil {
			return nil, err
		}
		eps = append(eps, up)
	}
	eps = slices.Clone(eps)
	for i := range eps {
		t, err := c.transport(eps[i])
		if err != nil {
			return nil, err
		}
		eps[i].Transport = t
	}
	return eps, nil
}

// Credentials returns the credentials file's entry for host (host[:port]).
func (c *Config) Credentials(host string) (Credentials, bool) {
	cr, ok := c.creds[canonicalHost(host)]
	return cr, ok
}

// canonicalHost maps Docker Hub's aliases to docker.io.
func canonicalHost(h string) string {
	h = strings.ToLower(h)
	switch h {
	case "index.docker.io", dockerHubUpstream:
		return dockerHub
	}
	return h
}

// transport returns the (cached) transport for an endpoint's TLS settings.
func (c *Config) transport(ep Endpoint) (http.RoundTripper, error) {
	key := fmt.Sprintf("%s|%v|%v|%s", ep.Host, ep.PlainHTTP, ep.SkipVerify, strings.Join(ep.CAFiles, ","))
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.transports[key]; t != nil {
		return t, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: ep.SkipVerify} //nolint:gosec // only when configured
	if len(ep.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range ep.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("registry %s: read CA bundle: %w", ep.Host, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errdefs.Invalid(fmt.Sprintf("registry %s: CA bundle %s holds no PEM certificate", ep.Host, f))
			}
		}
		tlsCfg.RootCAs = pool
	}
	base := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	t := &httpGuard{inner: base, host: ep.Host, plainOK: ep.PlainHTTP}
	c.transports[key] = t
	return t, nil
}

// httpGuard refuses plain HTTP to the registry unless the endpoint allows
// it. go-containerregistry also tries HTTP for RFC 1918 addresses; berth
// only does for loopback and hosts configured with http://.
type httpGuard struct {
	inner   http.RoundTripper
	host    string
	plainOK bool
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.plainOK && !IsLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("plain HTTP to %s is not allowed: configure it as http://%s in its hosts.toml to allow it", req.URL.Host, req.URL.Host)
	}
	return g.inner.RoundTrip(req)
}
