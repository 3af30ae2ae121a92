package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ExportFormat is the archive format Export writes.
type ExportFormat string

const (
	// ExportDocker is a `docker save` archive: manifest.json, the configs
	// and the layer blobs.
	ExportDocker ExportFormat = "docker"
	// ExportOCI is an OCI image layout (oci-layout, index.json, blobs/) in
	// a tar, as `docker save` writes since v25 and containerd exports.
	ExportOCI ExportFormat = "oci"
)

// exportImage is one image to export and the tags to write for it.
type exportImage struct {
	rec  *Image
	img  v1.Image
	tags []string // normalized repo:tag references
}

// Export writes the images refs name to w as one archive in format, the
// inverse of Import: layer blobs go out as stored (compressed), so a
// re-import yields the same image id and layers. A ref that names a tag
// exports that tag; an id or digest ref exports all of the image's tags.
// Every image is resolved and its blobs leased before the first byte is
// written, so a missing image fails the call without output; ctx ends a
// long copy.
func (s *Service) Export(ctx context.Context, refs []string, format ExportFormat, w io.Writer) error {
	if len(refs) == 0 {
		return errdefs.Invalid("no image to save")
	}
	if format != ExportDocker && format != ExportOCI {
		return errdefs.Invalid(fmt.Sprintf("archive format %q is not docker or oci", format))
	}
	// The leases keep a concurrent RemoveImage's GC from deleting the
	// blobs while they are read; nothing is written, so Close does no GC.
	in := s.NewIngest()
	defer in.Close()
	var imgs []*exportImage
	byID := map[string]*exportImage{}
	for _, ref := range refs {
		rec, err := s.Get(ref)
		if err != nil {
			return err
		}
		e := byID[rec.ID]
		if e == nil {
			img, err := s.leaseImage(ctx, in, rec)
			if err != nil {
				return err
			}
			e = &exportImage{rec: rec, img: img}
			byID[rec.ID] = e
			imgs = append(imgs, e)
		}
		if r, err := ParseReference(ref); err == nil && r.Tag != "" && slices.Contains(rec.RepoTags, r.String()) {
			e.tags = appendUnique(e.tags, r.String())
		} else {
			for _, t := range rec.RepoTags {
				e.tags = appendUnique(e.tags, t)
			}
		}
	}
	w = ctxWriter{ctx, w}
	var err error
	if format == ExportDocker {
		err = s.exportDocker(imgs, w)
	} else {
		err = s.exportOCI(ctx, imgs, w)
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		s.log.Info("images saved", "refs", refs, "format", string(format))
	}
	return err
}

// leaseImage leases every blob of rec and returns it as a v1.Image that
// reads them from the content store. A blob gone by then means the image
// was removed meanwhile.
func (s *Service) leaseImage(ctx context.Context, in *Ingest, rec *Image) (v1.Image, error) {
	if rec.Artifact != nil {
		// Import could not bring it back: its layers are files, not tars.
		return nil, errdefs.Invalid(fmt.Sprintf("image %s is an OCI artifact (%s); only runnable images can be saved", rec.ID, rec.Artifact.Type))
	}
	manifest, err := v1.NewHash(rec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("image %s: bad manifest digest in its record: %w", rec.ID, err)
	}
	for _, b := range rec.Blobs {
		if h, err := v1.NewHash(b); err == nil {
			in.lease(blobKey(h))
		}
	}
	in.lease(blobKey(manifest))
	rawManifest, err := s.ReadBlob(manifest)
	if err != nil {
		return nil, fmt.Errorf("image %s was removed while being saved: %w", rec.ID, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest %s does not parse: %w", rec.ID, manifest, err)
	}
	rawConfig, err := s.ReadBlob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s was removed while being saved: %w", rec.ID, err)
	}
	for _, l := range m.Layers {
		if !s.HasBlob(l.Digest) {
			return nil, fmt.Errorf("image %s was removed while being saved: layer blob %s: %w", rec.ID, l.Digest, errdefs.ErrNotFound)
		}
	}
	return partial.CompressedToImage(&storeImage{s: s, ctx: ctx, manifest: m, rawManifest: rawManifest, rawConfig: rawConfig})
}

// exportDocker writes a docker save archive with go-containerregistry's
// tarball writer.
func (s *Service) exportDocker(imgs []*exportImage, w io.Writer) error {
	refs := map[name.Reference]v1.Image{}
	for _, e := range imgs {
		for _, t := range e.tags {
			tag, err := name.NewTag(t, name.WeakValidation)
			if err != nil {
				return fmt.Errorf("image %s: tag %q: %w", e.rec.ID, t, err)
			}
			refs[tag] = e.img
		}
		if len(e.tags) == 0 {
			// The writer keys images by reference; an untagged image is
			// written with no RepoTags under a placeholder digest key.
			d, err := name.NewDigest("untagged@" + e.rec.Manifest)
			if err != nil {
				return err
			}
			refs[d] = e.img
		}
	}
	return tarball.MultiRefWrite(refs, w)
}

// exportOCI writes an OCI image layout with go-containerregistry's layout
// writer into a scratch dir of the image store, then streams that dir as a
// tar. The layer blobs are hard-linked into it first (the writer skips blobs
// that are present), so the scratch dir costs no copy of the layers.
func (s *Service) exportOCI(ctx context.Context, imgs []*exportImage, w io.Writer) error {
	dir, err := os.MkdirTemp(s.tmpDir(), "export-")
	if err != nil {
		return fmt.Errorf("create export dir: %w", err)
	}
	defer os.RemoveAll(dir)
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	for _, e := range imgs {
		layers, err := e.img.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			// A failed link (another filesystem) leaves the copy to the writer.
			_ = os.Link(s.blobPath(d), filepath.Join(blobs, d.Hex))
		}
		if len(e.tags) == 0 {
			if err := lp.AppendImage(e.img); err != nil {
				return fmt.Errorf("write OCI layout: %w", err)
			}
			continue
		}
		// One index entry per tag, named as containerd names them (the
		// full reference, and the tag alone in the OCI annotation).
		for _, t := range e.tags {
			r, err := ParseReference(t)
			if err != nil {
				return err
			}
			names := layout.WithAnnotations(map[string]string{
				annotationContainerdName: r.String(),
				annotationRefName:        r.Tag,
			})
			if err := lp.AppendImage(e.img, names); err != nil {
				return fmt.Errorf("write OCI layout: %w", err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tarLayout(dir, w); err != nil {
		return fmt.Errorf("write OCI layout tar: %w", err)
	}
	return nil
}

// tarLayout writes the layout dir as a tar with the same owner, modes and
// times for every entry (as the docker archive writer does), whatever the
// files on disk carry: the same image saves to the same bytes.
func tarLayout(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: time.Unix(0, 0)}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// storeImage is an image in the content store as go-containerregistry's
// compressed image core: manifest and config in memory, layers read from
// their blob files when a writer asks.
type storeImage struct {
	s           *Service
	ctx         context.Context
	manifest    *v1.Manifest
	rawManifest []byte
	rawConfig   []byte
}

func (i *storeImage) RawConfigFile() ([]byte, error) { return i.rawConfig, nil }
func (i *storeImage) RawManifest() ([]byte, error)   { return i.rawManifest, nil }

func (i *storeImage) MediaType() (types.MediaType, error) {
	if i.manifest.MediaType != "" {
		return i.manifest.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.manifest.Layers {
		if l.Digest == h {
			return &storeLayer{s: i.s, ctx: i.ctx, desc: l}, nil
		}
	}
	if i.manifest.Config.Digest == h {
		return &storeLayer{s: i.s, ctx: i.ctx, desc: i.manifest.Config}, nil
	}
	return nil, fmt.Errorf("blob %s is not in manifest: %w", h, errdefs.ErrNotFound)
}

// storeLayer is a layer blob as stored.
type storeLayer struct {
	s    *Service
	ctx  context.Context
	desc v1.Descriptor
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storeLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	if err := checkDigest(l.desc.Digest, "layer"); err != nil {
		return nil, err
	}
	f, err := os.Open(l.s.blobPath(l.desc.Digest))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("layer blob %s: %w", l.desc.Digest, errdefs.ErrNotFound)
		}
		return nil, err
	}
	return readCloser{Reader: ctxReader{l.ctx, f}, Closer: f}, nil
}

// ctxWriter stops a long write when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

type readCloser struct {
	io.Reader
	io.Closer
}
