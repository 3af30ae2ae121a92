package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/go-archive"
)

// Annotations that name an image in an OCI image layout's index.json.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// ImportImage imports the archive at path and returns the image ids; it
// satisfies the admin service's Importer.
func (s *Service) ImportImage(ctx context.Context, path string) ([]string, error) {
	imgs, err := s.Import(ctx, path)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(imgs))
	for _, img := range imgs {
		ids = append(ids, img.ID)
	}
	return ids, nil
}

// Import imports a `docker save` archive or an OCI image-layout archive
// (plain, gzip or zstd) found at path on this host and returns the images
// it recorded. The archive is extracted to a temp dir first (entries cannot
// escape it); all its images are ingested before any is committed, so a bad
// archive records nothing.
func (s *Service) Import(ctx context.Context, path string) ([]*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.NotFound(fmt.Sprintf("image archive %s does not exist", path))
		}
		return nil, fmt.Errorf("open image archive: %w", err)
	}
	defer f.Close()
	dir, err := os.MkdirTemp(s.tmpDir(), "import-")
	if err != nil {
		return nil, fmt.Errorf("create import dir: %w", err)
	}
	defer os.RemoveAll(dir)

	_, plain, err := decompress(bufio.NewReaderSize(ctxReader{ctx, f}, 64<<10))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("image archive %s: %v", path, err))
	}
	defer plain.Close()
	if err := archive.Unpack(plain, dir, &archive.TarOptions{NoLchown: true}); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errdefs.Invalid(fmt.Sprintf("image archive %s cannot be extracted: %v", path, err))
	}

	in := s.NewIngest()
	defer in.Close()
	var specs []CommitSpec
	switch {
	case exists(dir, "index.json"):
		specs, err = s.ingestLayout(ctx, in, dir)
	case exists(dir, "manifest.json"):
		specs, err = s.ingestDockerSave(ctx, in, dir)
	default:
		return nil, errdefs.Invalid(fmt.Sprintf("%s is neither a docker save archive (no manifest.json) nor an OCI image layout (no index.json)", path))
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	var out []*Image
	for _, spec := range specs {
		img, err := in.Commit(ctx, spec)
		if err != nil {
			return out, fmt.Errorf("import %s: %w", path, err)
		}
		out = append(out, img)
	}
	s.log.Info("image archive imported", "path", path, "images", len(out))
	return out, nil
}

func exists(dir, name string) bool {
	_, err := os.Lstat(dir + "/" + name)
	return err == nil
}

// ingestLayout ingests every image an OCI image layout's index.json lists,
// picking this host's platform out of multi-platform indexes.
func (s *Service) ingestLayout(ctx context.Context, in *Ingest, dir string) ([]CommitSpec, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("not an OCI image layout: %v", err))
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("read index.json: %v", err))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("parse index.json: %v", err))
	}
	var specs []CommitSpec
	for _, desc := range im.Manifests {
		target := desc.Digest
		if err := checkDigest(target, "index.json entry"); err != nil {
			return nil, err
		}
		manifest := target
		if desc.MediaType.IsIndex() {
			raw, err := lp.Bytes(target)
			if err != nil {
				return nil, errdefs.Invalid(fmt.Sprintf("read index %s: %v", target, err))
			}
			if err := in.WriteBlob(ctx, desc, bytes.NewReader(raw)); err != nil {
				return nil, err
			}
			if manifest, err = pickPlatform(lp, raw); err != nil {
				return nil, err
			}
		} else if !desc.MediaType.IsImage() {
			s.log.Debug("skipping index.json entry that is not an image", "digest", target.String(), "mediaType", string(desc.MediaType))
			continue
		}
		if err := s.ingestManifest(ctx, in, manifest, func(h v1.Hash) (io.ReadCloser, error) { return lp.Blob(h) }); err != nil {
			return nil, err
		}
		spec := CommitSpec{Manifest: manifest, Names: layoutNames(desc.Annotations)}
		if manifest != target {
			spec.Target = target
		}
		specs = append(specs, spec)
	}
	if len(specs) == 0 {
		return nil, errdefs.Invalid("the OCI image layout lists no image")
	}
	return specs, nil
}

// layoutNames takes an image's names from its index.json annotations:
// containerd's full name, or the OCI ref name when it is a full reference
// (docker writes just the tag, "latest", there, which names no repository).
func layoutNames(ann map[string]string) []string {
	var names []string
	if n := ann[annotationContainerdName]; n != "" {
		names = append(names, n)
	}
	if n := ann[annotationRefName]; n != "" && strings.ContainsAny(n, "/:@") {
		if norm, err := NormalizeReference(n); err == nil {
			names = appendUnique(names, norm)
		}
	}
	return names
}

// pickPlatform returns the manifest for this host's platform out of an
// index (nested indexes followed).
func pickPlatform(lp layout.Path, rawIndex []byte) (v1.Hash, error) {
	want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	for depth := 0; depth < 4; depth++ {
		im, err := v1.ParseIndexManifest(bytes.NewReader(rawIndex))
		if err != nil {
			return v1.Hash{}, errdefs.Invalid(fmt.Sprintf("parse image index: %v", err))
		}
		var found *v1.Descriptor
		for i, d := range im.Manifests {
			if d.Platform != nil && d.Platform.Satisfies(want) {
				found = &im.Manifests[i]
				break
			}
		}
		if found == nil {
			return v1.Hash{}, errdefs.Precondition(fmt.Sprintf("the image index has no manifest for %s", want.String()))
		}
		if err := checkDigest(found.Digest, "index entry"); err != nil {
			return v1.Hash{}, err
		}
		if !found.MediaType.IsIndex() {
			return found.Digest, nil
		}
		if rawIndex, err = lp.Bytes(found.Digest); err != nil {
			return v1.Hash{}, errdefs.Invalid(fmt.Sprintf("read index %s: %v", found.Digest, err))
		}
	}
	return v1.Hash{}, errdefs.Invalid("image indexes are nested too deep")
}

// ingestManifest stores a manifest, its config and its layers, reading
// blobs through open.
func (s *Service) ingestManifest(ctx context.Context, in *Ingest, manifest v1.Hash, open func(v1.Hash) (io.ReadCloser, error)) error {
	raw, err := readAll(open, manifest)
	if err != nil {
		return errdefs.Invalid(fmt.Sprintf("read manifest %s: %v", manifest, err))
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return errdefs.Invalid(fmt.Sprintf("parse manifest %s: %v", manifest, err))
	}
	if err := in.WriteBlob(ctx, v1.Descriptor{Digest: manifest, Size: int64(len(raw))}, bytes.NewReader(raw)); err != nil {
		return err
	}
	if err := checkDigest(m.Config.Digest, "config"); err != nil {
		return err
	}
	rawCfg, err := readAll(open, m.Config.Digest)
	if err != nil {
		return errdefs.Invalid(fmt.Sprintf("read config %s: %v", m.Config.Digest, err))
	}
	if err := in.WriteBlob(ctx, m.Config, bytes.NewReader(rawCfg)); err != nil {
		return err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return errdefs.Invalid(fmt.Sprintf("parse config %s: %v", m.Config.Digest, err))
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return errdefs.Invalid(fmt.Sprintf("manifest %s lists %d layers but its config has %d diff IDs", manifest, len(m.Layers), len(cfg.RootFS.DiffIDs)))
	}
	var parent v1.Hash
	for i, l := range m.Layers {
		res, err := in.Layer(ctx, LayerSpec{Blob: l, DiffID: cfg.RootFS.DiffIDs[i], Parent: parent},
			func() (io.ReadCloser, error) { return open(l.Digest) })
		if err != nil {
			return fmt.Errorf("image manifest %s, layer %d: %w", manifest, i+1, err)
		}
		parent = res.ChainID
	}
	return nil
}

func readAll(open func(v1.Hash) (io.ReadCloser, error), h v1.Hash) ([]byte, error) {
	if err := checkDigest(h, "blob"); err != nil {
		return nil, err
	}
	rc, err := open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Manifests and configs are small; a cap keeps a hostile archive from
	// making us read a huge "config" into memory.
	const maxMeta = 8 << 20
	b, err := io.ReadAll(io.LimitReader(rc, maxMeta+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMeta {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", h, maxMeta)
	}
	return b, nil
}

// ingestDockerSave ingests the images of a docker save archive. It has no
// registry manifest, so one is made (OCI media types) from the config and
// the layer blobs as they are in the archive, like containerd does; its
// digest is what the image's repo digests name.
func (s *Service) ingestDockerSave(ctx context.Context, in *Ingest, dir string) ([]CommitSpec, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rawManifest, err := root.ReadFile("manifest.json")
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("read manifest.json: %v", err))
	}
	var entries tarball.Manifest
	if err := json.Unmarshal(rawManifest, &entries); err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("parse manifest.json: %v", err))
	}
	if len(entries) == 0 {
		return nil, errdefs.Invalid("manifest.json lists no image")
	}
	// open reads files of the archive through os.Root: names in
	// manifest.json cannot point outside the extracted dir.
	open := func(name string) (io.ReadCloser, error) { return root.Open(path.Clean(name)) }
	var specs []CommitSpec
	for _, e := range entries {
		rc, err := open(e.Config)
		if err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("open config %q: %v", e.Config, err))
		}
		rawCfg, err := io.ReadAll(io.LimitReader(rc, 8<<20))
		rc.Close()
		if err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("read config %q: %v", e.Config, err))
		}
		sum := sha256.Sum256(rawCfg)
		cfgDesc := v1.Descriptor{
			MediaType: types.OCIConfigJSON,
			Size:      int64(len(rawCfg)),
			Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
		if err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("parse config %q: %v", e.Config, err))
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return nil, errdefs.Invalid(fmt.Sprintf("manifest.json lists %d layers for %q but its config has %d diff IDs", len(e.Layers), e.Config, len(cfg.RootFS.DiffIDs)))
		}
		if err := in.WriteBlob(ctx, cfgDesc, bytes.NewReader(rawCfg)); err != nil {
			return nil, err
		}
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfgDesc}
		var parent v1.Hash
		for i, name := range e.Layers {
			res, err := in.Layer(ctx, LayerSpec{DiffID: cfg.RootFS.DiffIDs[i], Parent: parent},
				func() (io.ReadCloser, error) { return open(name) })
			if err != nil {
				return nil, fmt.Errorf("image %s (%s), layer %d (%s): %w", strings.Join(e.RepoTags, ", "), e.Config, i+1, name, err)
			}
			parent = res.ChainID
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: LayerMediaType(res.Compression), Size: res.Blob.Size, Digest: res.Blob.Digest})
		}
		rawM, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		msum := sha256.Sum256(rawM)
		mDesc := v1.Descriptor{MediaType: m.MediaType, Size: int64(len(rawM)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(msum[:])}}
		if err := in.WriteBlob(ctx, mDesc, bytes.NewReader(rawM)); err != nil {
			return nil, err
		}
		specs = append(specs, CommitSpec{Manifest: mDesc.Digest, Names: e.RepoTags})
	}
	return specs, nil
}
