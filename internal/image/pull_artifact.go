package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/internal/errdefs"
)

// pullArtifact stores the OCI artifact res resolved to: its manifest and
// config, each layer blob as it is (digest and size verified, never
// unpacked), then the files dir that image volumes mount. What could not
// be mounted (see ParseArtifact) is refused before any blob is fetched.
func (p *Puller) pullArtifact(ctx context.Context, cfg PullConfig, log *slog.Logger, ps *pullState, res *resolved, m *v1.Manifest, norm Reference) (*Image, error) {
	if res.index != nil {
		// As CRI-O: artifacts are mounted one manifest at a time.
		return nil, errdefs.Invalid(fmt.Sprintf("%s is an index of OCI artifacts (index %s, artifact %s); berth mounts single artifacts: reference the artifact manifest by its digest",
			norm, res.index.Digest, res.manifest.Digest))
	}
	a, err := ParseArtifact(m, p.s.maxLayerBytes.Load())
	if err != nil {
		return nil, fmt.Errorf("OCI artifact %s (manifest %s) cannot be mounted as an image volume: %w", norm, res.manifest.Digest, err)
	}
	log = log.With("artifactType", a.Type)
	in := p.s.NewIngest()
	defer in.Close()
	if err := in.WriteBlob(ctx, v1.Descriptor{Digest: res.manifest.Digest, Size: int64(len(res.rawMan))}, bytes.NewReader(res.rawMan)); err != nil {
		return nil, p.storeError(err)
	}
	// The config (often the 2-byte empty descriptor) is kept with the
	// manifest, so the record's blobs are whole.
	if _, err := p.fetchConfig(ctx, in, res, m.Config, ps); err != nil {
		return nil, fmt.Errorf("config of OCI artifact %s: %w", norm, err)
	}
	for _, l := range m.Layers {
		ps.addLayer(l.Digest.String(), l.Size)
	}
	ps.notifyNow()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.MaxConcurrentDownloads)
	for i, l := range m.Layers {
		g.Go(func() (err error) {
			defer func() {
				if err != nil {
					err = fmt.Errorf("file %q (layer %d, %s) of OCI artifact %s: %w", a.Files[i].Path, i+1, l.Digest, norm, p.storeError(err))
				}
			}()
			defer recoverAsError(log, "artifact file worker", &err)
			return p.fetchArtifactFile(gctx, in, res, l, ps, log)
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	files, err := in.ArtifactFiles(ctx, res.manifest.Digest, a)
	if err != nil {
		return nil, fmt.Errorf("OCI artifact %s: %w", norm, p.storeError(err))
	}
	img, err := in.CommitArtifact(ctx, CommitSpec{Manifest: res.manifest.Digest, Names: []string{norm.String()}}, a, files)
	if err != nil {
		return nil, p.storeError(err)
	}
	log.Info("OCI artifact pulled", "image", img.ID, "files", len(a.Files), "size", img.Size)
	return img, nil
}

// fetchArtifactFile stores one artifact layer blob unless it is there,
// fetching it once across concurrent pulls. At most its declared size
// (plus the byte that shows it is longer) is read, even when that is 0.
func (p *Puller) fetchArtifactFile(ctx context.Context, in *Ingest, res *resolved, desc v1.Descriptor, ps *pullState, log *slog.Logger) error {
	d := desc.Digest.String()
	release, err := p.flights.acquire(ctx, d, ps, d)
	if err != nil {
		return err
	}
	defer release()
	fl := p.flights.get(d)
	opened := false
	start := time.Now()
	lazy := &lazyReader{open: func() (io.ReadCloser, error) {
		opened = true
		ps.setLayer(d, layerDownloading, 0)
		return p.openBlob(ctx, res, desc, func(n int64) {
			fl.add(n)
			ps.addBytes(d, n)
		})
	}}
	defer lazy.Close()
	if err := in.WriteBlob(ctx, desc, io.LimitReader(lazy, desc.Size+1)); err != nil {
		ps.setLayer(d, layerFailed, -1)
		return err
	}
	if opened {
		ps.setLayer(d, layerDone, -1)
		log.Debug("artifact file downloaded", "blob", d, "size", desc.Size, "took", time.Since(start))
	} else if ps.layerState(d) != layerShared {
		ps.setLayer(d, layerPresent, -1)
	}
	return nil
}
