package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"syscall"

	"github.com/berth-project/berth/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
// escape it; see extractArchive); all its images are ingested before any is
// committed, so a bad archive records nothing.
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
	if err := s.extractArchive(ctx, f, dir, "image archive "+path); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open import dir: %w", err)
	}
	defer root.Close()
	a := archiveDir{root: root}

	in := s.NewIngest()
	defer in.Close()
	var specs []CommitSpec
	switch {
	case exists(dir, "index.json"):
		specs, err = s.ingestLayout(ctx, in, a)
	case exists(dir, "manifest.json"):
		specs, err = s.ingestDockerSave(ctx, in, a)
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

// extractArchive unpacks an image archive (plain, gzip or zstd tar) into
// dir. The tar stream is held to the layer limits (tarGuard: declared
// sizes, sparse files at full size, entry count), and only regular files,
// dirs and links are made: device nodes and FIFOs are dropped, so nothing
// the import reads later can block it or reach a host device. what names
// the archive in errors.
func (s *Service) extractArchive(ctx context.Context, r io.Reader, dir, what string) error {
	_, plain, err := decompress(bufio.NewReaderSize(ctxReader{ctx, r}, 64<<10))
	if err != nil {
		return errdefs.Invalid(fmt.Sprintf("%s: %v", what, err))
	}
	defer plain.Close()
	guard := newTarGuard(s.maxLayerBytes.Load(), s.maxLayerEntries.Load(), what)
	defer guard.Close()
	filter := &tarFilter{tr: tar.NewReader(io.TeeReader(plain, guard))}
	filter.tw = tar.NewWriter(&filter.buf)
	if err := archive.Unpack(filter, dir, &archive.TarOptions{NoLchown: true}); err != nil {
		if gerr := guardErr(guard); gerr != nil {
			return gerr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errdefs.Invalid(fmt.Sprintf("%s cannot be extracted: %v", what, err))
	}
	if err := guard.Close(); err != nil {
		return err
	}
	if filter.skipped > 0 {
		s.log.Warn("image archive entries that are neither files, dirs nor links were skipped", "archive", what, "skipped", filter.skipped)
	}
	return nil
}

// tarFilter re-writes a tar stream keeping only regular files, dirs,
// symlinks and hard links (what image archives hold), each with a plain
// header (name, link, mode, size, time). It runs in the reader's goroutine:
// no goroutine of its own to leak or to panic unrecovered.
type tarFilter struct {
	tr      *tar.Reader
	tw      *tar.Writer
	buf     bytes.Buffer
	inBody  bool
	err     error // sticky; io.EOF once the end marker is in buf
	skipped int
}

func (f *tarFilter) Read(p []byte) (int, error) {
	for f.buf.Len() == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.err = f.fill()
	}
	return f.buf.Read(p)
}

// fill puts the next piece of output in buf: a header, up to 64 KiB of a
// body, or the end marker (then io.EOF).
func (f *tarFilter) fill() error {
	if f.inBody {
		n, err := io.CopyN(f.tw, f.tr, 64<<10)
		if errors.Is(err, io.EOF) || (err == nil && n < 64<<10) {
			f.inBody = false
			return nil
		}
		return err
	}
	hdr, err := f.tr.Next()
	if errors.Is(err, io.EOF) {
		if err := f.tw.Close(); err != nil {
			return err
		}
		return io.EOF
	}
	if err != nil {
		return err
	}
	typ := hdr.Typeflag
	switch typ {
	case tar.TypeReg, tar.TypeGNUSparse:
		typ = tar.TypeReg // sparse files are read expanded
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default: // devices, FIFOs, anything else
		f.skipped++
		return nil
	}
	out := &tar.Header{Typeflag: typ, Name: hdr.Name, Linkname: hdr.Linkname, Mode: hdr.Mode & 0o777, ModTime: hdr.ModTime}
	if typ == tar.TypeReg {
		out.Size = hdr.Size
	}
	if err := f.tw.WriteHeader(out); err != nil {
		return err
	}
	f.inBody = out.Size > 0
	return nil
}

func exists(dir, name string) bool {
	_, err := os.Lstat(dir + "/" + name)
	return err == nil
}

// ingestLayout ingests every image an OCI image layout's index.json lists,
// picking this host's platform out of multi-platform indexes.
func (s *Service) ingestLayout(ctx context.Context, in *Ingest, a archiveDir) ([]CommitSpec, error) {
	rawIndex, err := a.readTop("index.json")
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(rawIndex))
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
			raw, err := readAll(a.blob, target)
			if err != nil {
				return nil, errdefs.Invalid(fmt.Sprintf("read index %s: %v", target, err))
			}
			if err := in.WriteBlob(ctx, desc, bytes.NewReader(raw)); err != nil {
				return nil, err
			}
			if manifest, err = pickPlatform(a, raw); err != nil {
				return nil, err
			}
		} else if !desc.MediaType.IsImage() {
			s.log.Debug("skipping index.json entry that is not an image", "digest", target.String(), "mediaType", string(desc.MediaType))
			continue
		}
		if err := s.ingestManifest(ctx, in, manifest, a.blob); err != nil {
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
func pickPlatform(a archiveDir, rawIndex []byte) (v1.Hash, error) {
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
		if rawIndex, err = readAll(a.blob, found.Digest); err != nil {
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
	if IsArtifact(m.MediaType, m) {
		return errdefs.Invalid(fmt.Sprintf("manifest %s is an OCI artifact (%s), not a runnable image; archives bring in images only: pull the artifact from a registry", manifest, artifactType(m)))
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

// maxArchiveMeta caps what is read into memory from an archive: its
// index.json or manifest.json, manifests, indexes and configs.
const maxArchiveMeta = 8 << 20

func readAll(open func(v1.Hash) (io.ReadCloser, error), h v1.Hash) ([]byte, error) {
	if err := checkDigest(h, "blob"); err != nil {
		return nil, err
	}
	rc, err := open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readCapped(rc, h.String())
}

// readCapped reads at most maxArchiveMeta bytes, failing beyond.
func readCapped(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxArchiveMeta+1))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("read %s: %v", name, err))
	}
	if len(b) > maxArchiveMeta {
		return nil, errdefs.Invalid(fmt.Sprintf("%s is larger than %d bytes", name, maxArchiveMeta))
	}
	return b, nil
}

// archiveDir reads an extracted image archive. Names resolve inside it
// (os.Root), and only regular files are read, opened O_NONBLOCK: a FIFO or
// device there (extractArchive makes none) could not block the import or
// feed it endless bytes.
type archiveDir struct{ root *os.Root }

// open opens a regular file of the archive. Symlinks inside the archive
// are followed (older docker save archives share layer.tar files by link).
func (a archiveDir) open(name string) (*os.File, error) {
	return a.openFile(path.Clean(name), 0)
}

// readTop reads a top-level JSON file (index.json, manifest.json): not a
// symlink, a regular file, at most maxArchiveMeta bytes.
func (a archiveDir) readTop(name string) ([]byte, error) {
	f, err := a.openFile(name, syscall.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, name)
}

// blob opens blobs/<algorithm>/<hex> of an OCI image layout.
func (a archiveDir) blob(h v1.Hash) (io.ReadCloser, error) {
	return a.open("blobs/" + h.Algorithm + "/" + h.Hex)
}

func (a archiveDir) openFile(name string, flags int) (*os.File, error) {
	if flags&syscall.O_NOFOLLOW != 0 {
		// os.Root adds O_NOFOLLOW to every open and then resolves links
		// itself (inside the root), so a link is refused here. Only berthd
		// writes the 0700 import dir: nothing swaps the file in between.
		if fi, err := a.root.Lstat(name); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, errdefs.Invalid(fmt.Sprintf("%s in the image archive is a symbolic link; berth reads it only as a regular file", name))
		}
	}
	f, err := a.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|flags, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.Invalid(fmt.Sprintf("%s is not in the image archive", name))
		}
		return nil, errdefs.Invalid(fmt.Sprintf("open %s in the image archive: %v", name, err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s in the image archive: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, errdefs.Invalid(fmt.Sprintf("%s in the image archive is a %s, not a regular file", name, fileType(fi.Mode())))
	}
	return f, nil
}

// fileType names a non-regular file's type for messages.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// ingestDockerSave ingests the images of a docker save archive. It has no
// registry manifest, so one is made (OCI media types) from the config and
// the layer blobs as they are in the archive, like containerd does; its
// digest is what the image's repo digests name.
func (s *Service) ingestDockerSave(ctx context.Context, in *Ingest, a archiveDir) ([]CommitSpec, error) {
	rawManifest, err := a.readTop("manifest.json")
	if err != nil {
		return nil, err
	}
	var entries tarball.Manifest
	if err := json.Unmarshal(rawManifest, &entries); err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("parse manifest.json: %v", err))
	}
	if len(entries) == 0 {
		return nil, errdefs.Invalid("manifest.json lists no image")
	}
	open := func(name string) (io.ReadCloser, error) { return a.open(name) }
	var specs []CommitSpec
	for _, e := range entries {
		rc, err := open(e.Config)
		if err != nil {
			return nil, err
		}
		rawCfg, err := readCapped(rc, e.Config)
		rc.Close()
		if err != nil {
			return nil, err
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
