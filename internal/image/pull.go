package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/registry"
)

// ErrAuthFailed marks a pull the registry refused for its credentials (or
// their absence).
var ErrAuthFailed = errors.New("registry authentication failed")

// Defaults of PullConfig.
const (
	DefaultMaxConcurrentDownloads = 3
	DefaultPullProgressTimeout    = time.Minute
)

// PullConfig configures registry pulls.
type PullConfig struct {
	// Registries is the host configuration (mirrors, TLS, credentials
	// file); nil means none: every registry is its own upstream.
	Registries *registry.Config
	// MaxConcurrentDownloads is how many layers one pull fetches at once.
	MaxConcurrentDownloads int
	// ProgressTimeout fails a pull that received no byte for this long;
	// zero disables it.
	ProgressTimeout time.Duration
	// Platform is what is picked out of multi-platform indexes; zero means
	// HostPlatform().
	Platform v1.Platform
	// UserAgent is sent to registries.
	UserAgent string
}

// Puller pulls images from registries into the image store. It is safe for
// concurrent use: concurrent pulls fetch each blob once.
type Puller struct {
	s   *Service
	log *slog.Logger

	mu     sync.RWMutex
	cfg    PullConfig
	active map[*pullState]struct{}

	flights flightGroup
}

// NewPuller returns a puller into s.
func NewPuller(s *Service, cfg PullConfig) *Puller {
	if cfg.Registries == nil {
		cfg.Registries, _ = registry.Load("")
	}
	if cfg.MaxConcurrentDownloads < 1 {
		cfg.MaxConcurrentDownloads = DefaultMaxConcurrentDownloads
	}
	if cfg.Platform.OS == "" {
		cfg.Platform = HostPlatform()
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "berth"
	}
	return &Puller{s: s, log: s.log.With("component", "pull"), cfg: cfg, active: map[*pullState]struct{}{}, flights: flightGroup{m: map[string]*flight{}}}
}

// SetRegistries swaps the registry host configuration (on reload); pulls
// that already run keep the one they started with.
func (p *Puller) SetRegistries(r *registry.Config) {
	if r == nil {
		return
	}
	p.mu.Lock()
	p.cfg.Registries = r
	p.mu.Unlock()
}

func (p *Puller) config() PullConfig {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg
}

// Auth is the CRI AuthConfig of a pull. Its String never shows secrets.
type Auth struct {
	Username      string
	Password      string
	Auth          string // base64 of "user:password"
	IdentityToken string
	RegistryToken string
	// ServerAddress is the registry host the credentials are for; empty
	// means the registry the reference names (not its mirrors).
	ServerAddress string
}

func (a *Auth) String() string {
	if a == nil {
		return "no credentials"
	}
	return "credentials (redacted)"
}

// GoString keeps %#v from printing secrets.
func (a *Auth) GoString() string { return a.String() }

func (a *Auth) empty() bool {
	return a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "")
}

func (a *Auth) secrets() []string {
	if a == nil {
		return nil
	}
	return []string{a.Password, a.Auth, a.IdentityToken, a.RegistryToken}
}

// PullOptions are the per-pull settings.
type PullOptions struct {
	// Auth are the request's credentials; nil uses the credentials file.
	Auth *Auth
	// Progress, when set, is called as the pull advances (at most about
	// five times a second, and on every layer state change).
	Progress func(PullProgress)
}

// Pull fetches ref (short names are Docker Hub's) from its registry's
// endpoints (mirrors in order, then the upstream), stores and unpacks its
// layers, and records the image under ref. It returns the image record,
// whose ID (sha256 of the config) is what ImageStatus and CreateContainer
// take. Cancelling ctx aborts the pull and leaves nothing behind.
func (p *Puller) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	cfg := p.config()
	norm, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	parsed, err := name.ParseReference(norm.String(), name.WeakValidation)
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("image reference %q is not valid: %v", ref, err))
	}
	if opts.Auth != nil && opts.Auth.Auth != "" && opts.Auth.Username == "" {
		user, pass, err := registry.ParseAuth(opts.Auth.Auth)
		if err != nil {
			return nil, errdefs.Invalid("auth.auth: " + err.Error())
		}
		a := *opts.Auth
		a.Username, a.Password, a.Auth = user, pass, ""
		opts.Auth = &a
	}
	registryHost := parsed.Context().RegistryStr()
	if registryHost == name.DefaultRegistry {
		registryHost = dockerHub
	}

	ps := newPullState(norm.String(), opts.Progress, p.log)
	p.mu.Lock()
	p.active[ps] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.active, ps)
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := ps.watch(ctx, cancel, cfg.ProgressTimeout)
	defer stopWatch()

	start := time.Now()
	log := p.log.With("ref", norm.String())
	log.Debug("pull started")
	img, err := p.pull(ctx, cfg, log, ps, parsed, norm, registryHost, opts.Auth)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		err = redact(err, opts.Auth.secrets())
		log.Debug("pull failed", "err", err, "took", time.Since(start))
		return nil, err
	}
	log.Info("image pulled", "image", img.ID, "took", time.Since(start), "fetched", ps.fetchedBytes())
	return img, nil
}

// resolved is what a manifest lookup on one endpoint found.
type resolved struct {
	ep       registry.Endpoint
	puller   *remote.Puller
	repo     name.Repository
	index    *v1.Descriptor // the index a manifest was picked from
	rawIndex []byte
	manifest v1.Descriptor
	rawMan   []byte
	target   v1.Hash // what digest references name
}

func (p *Puller) pull(ctx context.Context, cfg PullConfig, log *slog.Logger, ps *pullState, ref name.Reference, norm Reference, registryHost string, auth *Auth) (*Image, error) {
	eps, err := cfg.Registries.Endpoints(registryHost)
	if err != nil {
		return nil, err
	}
	var res *resolved
	var errs []error
	for _, ep := range eps {
		r, err := p.resolve(ctx, cfg, ps, ep, ref, registryHost, auth)
		if err == nil {
			res = r
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		err = classify(err, ep, norm.String(), p.credsFor(cfg, ep, registryHost, auth) != nil)
		log.Debug("registry endpoint failed", "endpoint", ep.String(), "err", redact(err, auth.secrets()))
		errs = append(errs, err)
	}
	if res == nil {
		return nil, pickError(errs, norm.String())
	}
	ps.setEndpoint(res.ep.String())
	log = log.With("endpoint", res.ep.String())
	log.Debug("manifest resolved", "manifest", res.manifest.Digest.String(), "target", res.target.String())

	m, err := v1.ParseManifest(bytes.NewReader(res.rawMan))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("manifest %s of %s does not parse: %v", res.manifest.Digest, norm, err))
	}
	if IsArtifact(res.manifest.MediaType, m) {
		return p.pullArtifact(ctx, cfg, log, ps, res, m, norm)
	}
	if err := checkDigest(m.Config.Digest, "config"); err != nil {
		return nil, err
	}

	in := p.s.NewIngest()
	defer in.Close()
	if res.index != nil {
		if err := in.WriteBlob(ctx, v1.Descriptor{Digest: res.index.Digest, Size: int64(len(res.rawIndex))}, bytes.NewReader(res.rawIndex)); err != nil {
			return nil, p.storeError(err)
		}
	}
	if err := in.WriteBlob(ctx, v1.Descriptor{Digest: res.manifest.Digest, Size: int64(len(res.rawMan))}, bytes.NewReader(res.rawMan)); err != nil {
		return nil, p.storeError(err)
	}

	// The config: fetched once even when pulls race for it.
	rawCfg, err := p.fetchConfig(ctx, in, res, m.Config, ps)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("image config %s of %s does not parse: %v", m.Config.Digest, norm, err))
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, errdefs.Invalid(fmt.Sprintf("manifest %s of %s lists %d layers but its config has %d diff IDs",
			res.manifest.Digest, norm, len(m.Layers), len(cf.RootFS.DiffIDs)))
	}

	// Chain IDs come from the config, so every layer can be fetched and
	// unpacked at once, in any order.
	specs := make([]LayerSpec, len(m.Layers))
	var parent v1.Hash
	for i, l := range m.Layers {
		if err := checkDigest(l.Digest, "layer blob"); err != nil {
			return nil, err
		}
		if err := checkDigest(cf.RootFS.DiffIDs[i], "layer diff ID"); err != nil {
			return nil, err
		}
		specs[i] = LayerSpec{Blob: l, DiffID: cf.RootFS.DiffIDs[i], Parent: parent}
		parent = ChainID(parent, cf.RootFS.DiffIDs[i])
		ps.addLayer(l.Digest.String(), l.Size)
	}
	ps.notifyNow()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.MaxConcurrentDownloads)
	for i := range specs {
		g.Go(func() (err error) {
			defer func() {
				if err != nil {
					err = fmt.Errorf("layer %d (%s) of %s: %w", i+1, specs[i].Blob.Digest, norm, p.storeError(err))
				}
			}()
			defer recoverAsError(log, "layer worker", &err)
			return p.fetchLayer(gctx, in, res, specs[i], ps, log)
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}

	spec := CommitSpec{Manifest: res.manifest.Digest, Names: []string{norm.String()}}
	if res.target != res.manifest.Digest {
		spec.Target = res.target
	}
	img, err := in.Commit(ctx, spec)
	if err != nil {
		return nil, p.storeError(err)
	}
	return img, nil
}

// resolve fetches ref's manifest (picking this platform out of indexes)
// from one endpoint.
func (p *Puller) resolve(ctx context.Context, cfg PullConfig, ps *pullState, ep registry.Endpoint, ref name.Reference, registryHost string, auth *Auth) (*resolved, error) {
	nameOpts := []name.Option{name.WeakValidation}
	if ep.PlainHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	repo, err := name.NewRepository(ep.Host+"/"+ref.Context().RepositoryStr(), nameOpts...)
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("repository %s on %s: %v", ref.Context().RepositoryStr(), ep.Host, err))
	}
	authenticator := authn.Anonymous
	if c := p.credsFor(cfg, ep, registryHost, auth); c != nil {
		authenticator = authn.FromConfig(*c)
	}
	rp, err := remote.NewPuller(
		remote.WithTransport(&activityTransport{inner: ep.Transport, ps: ps}),
		remote.WithAuth(authenticator),
		remote.WithUserAgent(cfg.UserAgent),
		// Each layer download holds one slot; the config one more.
		remote.WithJobs(cfg.MaxConcurrentDownloads+1),
		// A dead registry fails fast; the progress timeout covers stalls.
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
	)
	if err != nil {
		return nil, err
	}
	var target name.Reference
	if d, ok := ref.(name.Digest); ok {
		target = repo.Digest(d.DigestStr())
	} else {
		target = repo.Tag(ref.Identifier())
	}
	desc, err := rp.Get(ctx, target)
	if err != nil {
		return nil, err
	}
	res := &resolved{ep: ep, puller: rp, repo: repo, target: desc.Digest}
	raw, mt := desc.Manifest, desc.MediaType
	digest := desc.Digest
	for depth := 0; ; depth++ {
		switch {
		case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
			return nil, errdefs.Invalid(fmt.Sprintf("%s is a Docker schema 1 image, which berth does not pull (deprecated since 2017); push it again with a current client", ref))
		case mt.IsIndex():
			if depth >= 4 {
				return nil, errdefs.Invalid(fmt.Sprintf("%s: image indexes are nested too deep", ref))
			}
			im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				return nil, errdefs.Invalid(fmt.Sprintf("image index %s of %s does not parse: %v", digest, ref, err))
			}
			pick, err := SelectManifest(im, cfg.Platform)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ref, err)
			}
			if err := checkDigest(pick.Digest, "index entry"); err != nil {
				return nil, err
			}
			if res.index == nil {
				// The outermost index is what digest references name.
				res.index = &v1.Descriptor{Digest: digest, MediaType: mt, Size: int64(len(raw))}
				res.rawIndex = raw
			}
			d, err := rp.Get(ctx, repo.Digest(pick.Digest.String()))
			if err != nil {
				return nil, err
			}
			raw, mt, digest = d.Manifest, d.MediaType, d.Digest
		case mt.IsImage() || mt == "":
			res.manifest = v1.Descriptor{Digest: digest, MediaType: mt, Size: int64(len(raw))}
			res.rawMan = raw
			return res, nil
		default:
			return nil, errdefs.Invalid(fmt.Sprintf("%s is a %s, not an image", ref, mt))
		}
	}
}

// credsFor picks an endpoint's credentials: the request's when they are
// for this registry, else the credentials file's entry for the endpoint
// host (or, for the upstream, the registry name), else none.
func (p *Puller) credsFor(cfg PullConfig, ep registry.Endpoint, registryHost string, auth *Auth) *authn.AuthConfig {
	if !auth.empty() {
		server := hostOf(auth.ServerAddress)
		if (server == "" && !ep.Mirror) || server == ep.Host || (!ep.Mirror && sameRegistry(server, registryHost)) {
			return &authn.AuthConfig{Username: auth.Username, Password: auth.Password, IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken}
		}
	}
	c, ok := cfg.Registries.Credentials(ep.Host)
	if !ok && !ep.Mirror {
		c, ok = cfg.Registries.Credentials(registryHost)
	}
	if !ok || c.Empty() {
		return nil
	}
	return &authn.AuthConfig{Username: c.Username, Password: c.Password, IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken}
}

// hostOf takes the host out of a ServerAddress, which kubelet may send as
// a URL ("https://index.docker.io/v1/").
func hostOf(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	return strings.ToLower(s)
}

func sameRegistry(a, b string) bool {
	hub := func(h string) string {
		switch h {
		case "index.docker.io", "registry-1.docker.io", dockerHub:
			return dockerHub
		}
		return h
	}
	return hub(a) == hub(b)
}

// fetchConfig stores the config blob (fetching it unless present) and
// returns its bytes.
func (p *Puller) fetchConfig(ctx context.Context, in *Ingest, res *resolved, desc v1.Descriptor, ps *pullState) ([]byte, error) {
	const maxConfig = 8 << 20
	if desc.Size > maxConfig {
		return nil, errdefs.Invalid(fmt.Sprintf("image config %s is %d bytes, more than the %d berth accepts", desc.Digest, desc.Size, maxConfig))
	}
	release, err := p.flights.acquire(ctx, desc.Digest.String(), ps, "")
	if err != nil {
		return nil, err
	}
	defer release()
	lazy := &lazyReader{open: func() (io.ReadCloser, error) {
		return p.openBlob(ctx, res, desc, nil)
	}}
	defer lazy.Close()
	if err := in.WriteBlob(ctx, desc, lazy); err != nil {
		return nil, p.storeError(err)
	}
	return p.s.ReadBlob(desc.Digest)
}

// fetchLayer stores and unpacks one layer unless it is there, fetching its
// blob once across concurrent pulls.
func (p *Puller) fetchLayer(ctx context.Context, in *Ingest, res *resolved, spec LayerSpec, ps *pullState, log *slog.Logger) error {
	d := spec.Blob.Digest.String()
	release, err := p.flights.acquire(ctx, d, ps, d)
	if err != nil {
		return err
	}
	defer release()
	fl := p.flights.get(d)
	opened := false
	start := time.Now()
	_, err = in.Layer(ctx, spec, func() (io.ReadCloser, error) {
		opened = true
		ps.setLayer(d, layerDownloading, 0)
		log.Debug("layer download started", "blob", d, "size", spec.Blob.Size)
		return p.openBlob(ctx, res, spec.Blob, func(n int64) {
			fl.add(n)
			ps.addBytes(d, n)
		})
	})
	if err != nil {
		ps.setLayer(d, layerFailed, -1)
		return err
	}
	if opened {
		ps.setLayer(d, layerDone, -1)
		log.Debug("layer downloaded and unpacked", "blob", d, "bytes", ps.layerBytes(d), "took", time.Since(start))
	} else if ps.layerState(d) != layerShared {
		ps.setLayer(d, layerPresent, -1)
	}
	return nil
}

// openBlob starts the download of a blob; onBytes sees every chunk read.
// More than the descriptor's size is never read.
func (p *Puller) openBlob(ctx context.Context, res *resolved, desc v1.Descriptor, onBytes func(int64)) (io.ReadCloser, error) {
	l, err := res.puller.Layer(ctx, res.repo.Digest(desc.Digest.String()))
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, classify(err, res.ep, res.repo.Name()+"@"+desc.Digest.String(), false)
	}
	var r io.Reader = rc
	if desc.Size > 0 {
		// One byte over lets the store see (and report) an oversized blob.
		r = io.LimitReader(rc, desc.Size+1)
	}
	return &countingReadCloser{r: r, c: rc, onBytes: onBytes}, nil
}

// storeError turns a full disk and a cut download into messages saying so.
func (p *Puller) storeError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("image store %s is out of space; free space or remove unused images (partial data was removed): %w", p.s.root, err)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("the registry connection broke mid-download (partial data was removed; pull again): %w", err)
	}
	return err
}

// classify turns registry errors into ones that say what happened and
// carry an error kind: unknown names are NotFound, refused credentials are
// ErrAuthFailed, an unreachable registry is Unavailable.
func classify(err error, ep registry.Endpoint, ref string, hadCreds bool) error {
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range te.Errors {
			codes[d.Code] = true
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || codes[transport.UnauthorizedErrorCode]:
			if !hadCreds {
				return fmt.Errorf("%w: %s requires credentials to pull %s and none were given (pass them with the pull or in the credentials file)", ErrAuthFailed, ep, ref)
			}
			return fmt.Errorf("%w: %s rejected the credentials for %s (wrong user name or password?)", ErrAuthFailed, ep, ref)
		case te.StatusCode == http.StatusForbidden || codes[transport.DeniedErrorCode]:
			return fmt.Errorf("%w: %s denies access to %s for these credentials", ErrAuthFailed, ep, ref)
		case te.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode] || codes[transport.BlobUnknownErrorCode]:
			return errdefs.NotFound(fmt.Sprintf("image %s not found on %s (%s)", ref, ep, te.Error()))
		}
		return fmt.Errorf("%s: pulling %s: %w", ep, ref, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s is unreachable: %w (%w)", ep, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("%s: pulling %s: %w", ep, ref, err)
}

// pickError is the error of a pull no endpoint could serve: NotFound only
// when every endpoint said so, else the upstream's (last) error with the
// others mentioned.
func pickError(errs []error, ref string) error {
	if len(errs) == 0 {
		return errdefs.NotFound(fmt.Sprintf("image %s: no registry endpoint configured", ref))
	}
	last := errs[len(errs)-1]
	if len(errs) == 1 {
		return last
	}
	var others []string
	for _, e := range errs[:len(errs)-1] {
		others = append(others, e.Error())
	}
	return fmt.Errorf("%w (mirrors tried first: %s)", last, strings.Join(others, "; "))
}

// redact removes secrets from an error's message, should any library
// have put one there.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if len(s) >= 4 {
			clean = strings.ReplaceAll(clean, s, "<redacted>")
		}
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is keeps the error kind of the wrapped error without exposing its text.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// lazyReader opens its source on the first Read: a blob that turns out to
// be present is never fetched.
type lazyReader struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
	err  error
}

func (l *lazyReader) Read(b []byte) (int, error) {
	if l.rc == nil && l.err == nil {
		l.rc, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(b)
}

func (l *lazyReader) Close() error {
	if l.rc != nil {
		return l.rc.Close()
	}
	return nil
}

type countingReadCloser struct {
	r       io.Reader
	c       io.Closer
	onBytes func(int64)
}

func (c *countingReadCloser) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 && c.onBytes != nil {
		c.onBytes(int64(n))
	}
	return n, err
}

func (c *countingReadCloser) Close() error { return c.c.Close() }

// activityTransport notes every response and body chunk from the registry
// as progress, for the progress timeout.
type activityTransport struct {
	inner http.RoundTripper
	ps    *pullState
}

func (t *activityTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if resp != nil {
		t.ps.touch()
		resp.Body = &activityBody{ReadCloser: resp.Body, ps: t.ps}
	}
	return resp, err
}

type activityBody struct {
	io.ReadCloser
	ps *pullState
}

func (b *activityBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.ps.touch()
	}
	return n, err
}
