package framework

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryBinary is Debian's docker-registry (distribution v2).
const RegistryBinary = "/usr/bin/docker-registry"

// RegistryOptions picks the variant StartRegistry runs.
type RegistryOptions struct {
	// Auth protects the registry with htpasswd basic auth (User/Password).
	Auth bool
	// TLS serves HTTPS with a certificate from a CA made for the test.
	TLS bool
	// Dir is where storage, config and log go; empty makes a temp dir.
	// A registry started again on the same Dir serves the same content.
	Dir string
}

// Registry is one docker-registry process on 127.0.0.1.
type Registry struct {
	// Host is 127.0.0.1:<port>, what references name.
	Host string
	// User and Password are the htpasswd credentials (Auth only).
	User, Password string
	// CAFile is the PEM of the CA that signed the server certificate (TLS only).
	CAFile string
	// Dir holds storage/, config.yml, and registry.log.
	Dir     string
	LogPath string

	opts   RegistryOptions
	caPool *x509.CertPool
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRegistry starts a docker-registry on a free loopback port and stops
// it (by PID) when t ends.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	if _, err := os.Stat(RegistryBinary); err != nil {
		t.Skipf("%s not installed (apt-get install docker-registry)", RegistryBinary)
	}
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	r := &Registry{Dir: dir, LogPath: filepath.Join(dir, "registry.log"), opts: opts}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	r.Host = fmt.Sprintf("127.0.0.1:%d", port)
	if err := r.writeConfig(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	return r
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *Registry) writeConfig() error {
	if err := os.MkdirAll(filepath.Join(r.Dir, "storage"), 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: berth-e2e-%s
`, filepath.Join(r.Dir, "storage"), r.Host, randHex(8))
	if r.opts.TLS {
		cert, key, err := r.makeCerts()
		if err != nil {
			return err
		}
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if r.opts.Auth {
		r.User, r.Password = "berth", "s3cret-"+randHex(6)
		out, err := exec.Command("htpasswd", "-Bbn", r.User, r.Password).Output()
		if err != nil {
			return fmt.Errorf("htpasswd (apt-get install apache2-utils): %w", err)
		}
		htpasswd := filepath.Join(r.Dir, "htpasswd")
		if err := os.WriteFile(htpasswd, out, 0o600); err != nil {
			return err
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-e2e\n    path: %s\n", htpasswd)
	}
	return os.WriteFile(filepath.Join(r.Dir, "config.yml"), []byte(cfg), 0o644)
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 signed by it.
func (r *Registry) makeCerts() (certPath, keyPath string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth e2e test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return "", "", err
	}
	r.CAFile = filepath.Join(r.Dir, "ca.pem")
	certPath, keyPath = filepath.Join(r.Dir, "server.pem"), filepath.Join(r.Dir, "server-key.pem")
	if err := os.WriteFile(r.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	r.caPool = x509.NewCertPool()
	r.caPool.AddCert(caCert)
	return certPath, keyPath, nil
}

func (r *Registry) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	logf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(RegistryBinary, "serve", filepath.Join(r.Dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", RegistryBinary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	client := r.httpClient()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(r.LogPath)
			return fmt.Errorf("docker-registry exited before serving:\n%s", log)
		default:
		}
		resp, err := client.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry did not answer on %s within 15s; log %s", r.Host, r.LogPath)
}

// URL is the registry's base URL.
func (r *Registry) URL() string {
	if r.opts.TLS {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func (r *Registry) httpClient() *http.Client {
	return &http.Client{Transport: r.Transport(), Timeout: 5 * time.Second}
}

// Transport trusts the registry's CA (TLS) for pushes from the test.
func (r *Registry) Transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if r.caPool != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: r.caPool, MinVersion: tls.VersionTLS12}
	}
	return t
}

// Stop kills the registry by PID and waits for it; a no-op when stopped.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Restart starts the registry again on the same port and storage.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
}

// Ref returns the full reference of repoTag ("repo:tag" or "repo@digest") here.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

func (r *Registry) remoteOptions() []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.Transport())}
	if r.opts.Auth {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Password}))
	}
	return opts
}

// Push writes img as repoTag and returns its manifest digest.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag), name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.remoteOptions()...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// PushIndex writes a multi-platform index as repoTag (its images too) and
// returns its digest.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag), name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, r.remoteOptions()...); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// RegistryProxy is a reverse proxy on loopback in front of a registry that
// counts blob GETs and can throttle or stall responses, for fault tests.
type RegistryProxy struct {
	// Host is 127.0.0.1:<port>.
	Host string

	srv     *http.Server
	mu      sync.Mutex
	gets    map[string]int // blob digest -> GET requests
	rate    atomic.Int64   // bytes per second per response; 0: unlimited
	stalled atomic.Bool
	served  atomic.Int64 // blob bytes sent
	gen     atomic.Int64 // bumped by Abort: older responses are cut
}

// StartRegistryProxy proxies plain HTTP to the registry at upstream
// (host:port, plain HTTP); it stops when t ends.
func StartRegistryProxy(t testing.TB, upstream string) *RegistryProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &RegistryProxy{Host: l.Addr().String(), gets: map[string]int{}}
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ErrorLog = nil
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		blob := ""
		if i := strings.Index(req.URL.Path, "/blobs/"); i >= 0 && req.Method == http.MethodGet {
			blob = req.URL.Path[i+len("/blobs/"):]
			p.mu.Lock()
			p.gets[blob]++
			p.mu.Unlock()
		}
		if blob == "" {
			rp.ServeHTTP(w, req)
			return
		}
		rp.ServeHTTP(&shapedWriter{ResponseWriter: w, p: p, ctx: req.Context(), gen: p.gen.Load()}, req)
	})}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() {
		p.stalled.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			_ = p.srv.Close()
		}
	})
	return p
}

// BlobGets returns how often each blob digest was fetched.
func (p *RegistryProxy) BlobGets() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.gets))
	for k, v := range p.gets {
		out[k] = v
	}
	return out
}

// ResetCounts forgets the counted GETs and bytes.
func (p *RegistryProxy) ResetCounts() {
	p.mu.Lock()
	p.gets = map[string]int{}
	p.mu.Unlock()
	p.served.Store(0)
}

// SetRate limits each blob response to bytesPerSec (0: unlimited).
func (p *RegistryProxy) SetRate(bytesPerSec int64) { p.rate.Store(bytesPerSec) }

// SetStalled makes blob responses stop sending (after their headers and
// first chunk) until unstalled or the client goes away.
func (p *RegistryProxy) SetStalled(v bool) { p.stalled.Store(v) }

// Abort cuts every blob response in flight, as a registry crash does (a
// killed registry's last bytes may still sit in socket buffers; this makes
// the cut immediate).
func (p *RegistryProxy) Abort() { p.gen.Add(1) }

// Served is the number of blob bytes sent so far.
func (p *RegistryProxy) Served() int64 { return p.served.Load() }

// shapedWriter throttles and stalls a blob response.
type shapedWriter struct {
	http.ResponseWriter
	p     *RegistryProxy
	ctx   context.Context
	gen   int64
	wrote bool
}

func (w *shapedWriter) cut() {
	if w.p.gen.Load() != w.gen {
		// net/http closes the connection without a log line.
		panic(http.ErrAbortHandler)
	}
}

func (w *shapedWriter) Write(b []byte) (int, error) {
	w.cut()
	if w.wrote && w.p.stalled.Load() {
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		for w.p.stalled.Load() {
			w.cut()
			select {
			case <-w.ctx.Done():
				return 0, w.ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	w.wrote = true
	total := 0
	for len(b) > 0 {
		chunk := b
		rate := w.p.rate.Load()
		if rate > 0 && int64(len(chunk)) > rate/20 {
			chunk = chunk[:max(rate/20, 1)]
		}
		n, err := w.ResponseWriter.Write(chunk)
		total += n
		w.p.served.Add(int64(n))
		if err != nil {
			return total, err
		}
		b = b[n:]
		if rate > 0 {
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			select {
			case <-w.ctx.Done():
				return total, w.ctx.Err()
			case <-time.After(time.Duration(int64(n) * int64(time.Second) / rate)):
			}
			w.cut()
		}
	}
	return total, nil
}

func (w *shapedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// WaitFor polls cond every 20ms until it holds or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
