// Package testimage builds small OCI images for berth's tests from files on
// this machine (Debian's busybox-static), so that no test needs a registry or
// the network. Images are built with go-containerregistry and written either
// as a `docker save` tar or as an OCI image-layout tar, the two formats
// berth's admin ImportImage accepts.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxRef is the reference under which Busybox writes its image.
const BusyboxRef = "berth.test/busybox:latest"

// BusyboxBinary is Debian's busybox-static, the only executable in the images.
const BusyboxBinary = "/bin/busybox"

// DefaultPath is the PATH every image built here carries in its config.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is the mtime of every file in every layer, so that the same input
// gives the same digests on every run.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Layer describes one image layer. Parent directories of every entry are
// added implicitly (mode 0755, root-owned).
type Layer struct {
	// Files maps an absolute path to its content (mode 0644 unless listed in Modes).
	Files map[string]string
	// Modes overrides the permission bits of entries in Files or Dirs.
	Modes map[string]os.FileMode
	// Dirs are directories to create (mode 0755 unless listed in Modes).
	Dirs []string
	// Symlinks maps a link path to its target.
	Symlinks map[string]string
	// Hardlinks maps a link path to the absolute path of a file in Files,
	// as the official busybox image links its applets.
	Hardlinks map[string]string
	// Fifos are named pipes to create (mode 0644), for hostile images.
	Fifos []string
	// Whiteouts are paths of lower layers that this layer deletes.
	Whiteouts []string
	// Opaque are directories whose lower-layer content this layer hides.
	Opaque []string
}

// Options describes an image built by Build.
type Options struct {
	// Base is the image the layers go on; nil means the busybox image.
	// Use empty.Image for an image with only the given layers.
	Base v1.Image
	// Layers are appended to Base in order.
	Layers []Layer
	// Config fields; nil or empty leaves Base's value (Env is appended to
	// Base's Env). Set ClearCmd to drop Base's Cmd.
	Entrypoint []string
	Cmd        []string
	ClearCmd   bool
	Env        []string
	WorkingDir string
	User       string
	StopSignal string
	Labels     map[string]string
}

var (
	busyboxOnce sync.Once
	busyboxImg  v1.Image
	busyboxErr  error

	tarOnce sync.Once
	tarPath string
	tarErr  error

	dirMu sync.Mutex
	dir   string
)

// workDir is the process-wide directory for written archives, removed by Cleanup.
func workDir() (string, error) {
	dirMu.Lock()
	defer dirMu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "berth-testimage-")
		if err != nil {
			return "", err
		}
		dir = d
	}
	return dir, nil
}

// Cleanup removes the archives written by Busybox and TempTar. Call it once,
// from TestMain, after the tests ran.
func Cleanup() {
	dirMu.Lock()
	defer dirMu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
	}
}

// Busybox writes (once per process) a docker-save tar of BusyboxRef and
// returns its path. The image has one layer: /bin/busybox with a symlink per
// applet in /bin, /etc/passwd and /etc/group (root; user 1000 "user"; group
// "extra" 2000 with member user), /tmp (1777), /root and /home/user.
func Busybox(t testing.TB) string {
	t.Helper()
	tarOnce.Do(func() {
		var img v1.Image
		if img, tarErr = BusyboxImage(); tarErr != nil {
			return
		}
		var d string
		if d, tarErr = workDir(); tarErr != nil {
			return
		}
		tarPath = filepath.Join(d, "busybox-docker.tar")
		tarErr = WriteDockerSave(tarPath, BusyboxRef, img)
	})
	if tarErr != nil {
		t.Fatalf("build busybox test image: %v", tarErr)
	}
	return tarPath
}

// BusyboxImage returns the busybox image (built once per process).
func BusyboxImage() (v1.Image, error) {
	busyboxOnce.Do(func() { busyboxImg, busyboxErr = buildBusybox() })
	return busyboxImg, busyboxErr
}

func buildBusybox() (v1.Image, error) {
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("read %s (install Debian's busybox-static: apt-get install busybox-static, or run hack/install.sh): %w", BusyboxBinary, err)
	}
	out, err := exec.Command(BusyboxBinary, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", BusyboxBinary, err)
	}
	l := Layer{
		Files: map[string]string{
			"/bin/busybox": string(bin),
			"/etc/passwd":  "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
			"/etc/group":   "root:x:0:\nuser:x:1000:\nextra:x:2000:user\n",
		},
		Modes:    map[string]os.FileMode{"/bin/busybox": 0o755, "/tmp": 0o1777, "/root": 0o700},
		Dirs:     []string{"/tmp", "/root", "/home/user", "/etc", "/proc", "/sys", "/dev"},
		Symlinks: map[string]string{},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		l.Symlinks["/bin/"+applet] = "busybox"
	}
	layer, err := l.build()
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "berth testimage: busybox", Created: v1.Time{Time: epoch}}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = goarch()
	cf.OS = "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = []string{DefaultPath}
	cf.Config.Cmd = []string{"sh"}
	return mutate.ConfigFile(img, cf)
}

// Build returns an image made of opts.Base (the busybox image when nil), the
// given layers and config changes.
func Build(opts Options) (v1.Image, error) {
	img := opts.Base
	if img == nil {
		var err error
		if img, err = BusyboxImage(); err != nil {
			return nil, err
		}
	}
	for i, l := range opts.Layers {
		layer, err := l.build()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: fmt.Sprintf("berth testimage: layer %d", i), Created: v1.Time{Time: epoch}}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if cf.OS == "" {
		cf.OS, cf.Architecture = "linux", goarch()
	}
	c := &cf.Config
	if opts.Entrypoint != nil {
		c.Entrypoint = opts.Entrypoint
	}
	if opts.ClearCmd {
		c.Cmd = nil
	}
	if opts.Cmd != nil {
		c.Cmd = opts.Cmd
	}
	c.Env = append(c.Env, opts.Env...)
	if opts.WorkingDir != "" {
		c.WorkingDir = opts.WorkingDir
	}
	if opts.User != "" {
		c.User = opts.User
	}
	if opts.StopSignal != "" {
		c.StopSignal = opts.StopSignal
	}
	if len(opts.Labels) > 0 {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range opts.Labels {
			c.Labels[k] = v
		}
	}
	return mutate.ConfigFile(img, cf)
}

// WriteDockerSave writes img, tagged ref, as a `docker save` tar at p.
func WriteDockerSave(p, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	return tarball.WriteToFile(p, tag, img)
}

// WriteOCILayout writes img as a tar of an OCI image layout at p. The index
// entry carries ref in the org.opencontainers.image.ref.name annotation, the
// way `skopeo copy ... oci-archive:x.tar:ref` and buildkit write it.
func WriteOCILayout(p, ref string, img v1.Image) error {
	tmp, err := os.MkdirTemp("", "berth-oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return err
	}
	return tarDir(tmp, p)
}

// TempTar builds opts and writes it tagged ref to a process-wide temp dir (as
// an OCI layout when oci is true, else as a docker-save tar); it returns the
// path. The file lives until Cleanup.
func TempTar(t testing.TB, ref string, oci bool, opts Options) string {
	t.Helper()
	img, err := Build(opts)
	if err != nil {
		t.Fatalf("build image %s: %v", ref, err)
	}
	d, err := workDir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(d, "image-*.tar")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if oci {
		err = WriteOCILayout(f.Name(), ref, img)
	} else {
		err = WriteDockerSave(f.Name(), ref, img)
	}
	if err != nil {
		t.Fatalf("write image %s: %v", ref, err)
	}
	return f.Name()
}

// build turns l into an uncompressed tar, then a gzip OCI layer.
func (l Layer) build() (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	var parents func(p string) error
	addDir := func(p string) error {
		if seen[p] {
			return nil
		}
		if err := parents(p); err != nil {
			return err
		}
		seen[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: tarMode(l.Modes, p, 0o755), ModTime: epoch})
	}
	parents = func(p string) error {
		parent := path.Dir(p)
		if parent == "/" || parent == "." {
			return nil
		}
		return addDir(parent)
	}
	type entry struct {
		kind    byte
		p       string
		content string
		target  string
	}
	var entries []entry
	for p, c := range l.Files {
		entries = append(entries, entry{kind: tar.TypeReg, p: clean(p), content: c})
	}
	for p, target := range l.Symlinks {
		entries = append(entries, entry{kind: tar.TypeSymlink, p: clean(p), target: target})
	}
	for _, p := range l.Dirs {
		entries = append(entries, entry{kind: tar.TypeDir, p: clean(p)})
	}
	for _, p := range l.Fifos {
		entries = append(entries, entry{kind: tar.TypeFifo, p: clean(p)})
	}
	for _, p := range l.Whiteouts {
		p = clean(p)
		entries = append(entries, entry{kind: tar.TypeReg, p: path.Join(path.Dir(p), ".wh."+path.Base(p))})
	}
	for _, p := range l.Opaque {
		p = clean(p)
		entries = append(entries, entry{kind: tar.TypeDir, p: p}, entry{kind: tar.TypeReg, p: path.Join(p, ".wh..wh..opq")})
	}
	// Sorted so that a directory comes before its content and the bytes are stable.
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].p < entries[j].p })
	for _, e := range entries {
		switch e.kind {
		case tar.TypeDir:
			if err := addDir(e.p); err != nil {
				return nil, err
			}
		case tar.TypeReg:
			if err := parents(e.p); err != nil {
				return nil, err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(e.p, "/"), Mode: tarMode(l.Modes, e.p, 0o644), Size: int64(len(e.content)), ModTime: epoch}); err != nil {
				return nil, err
			}
			if _, err := io.WriteString(tw, e.content); err != nil {
				return nil, err
			}
		case tar.TypeFifo:
			if err := parents(e.p); err != nil {
				return nil, err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeFifo, Name: strings.TrimPrefix(e.p, "/"), Mode: tarMode(l.Modes, e.p, 0o644), ModTime: epoch}); err != nil {
				return nil, err
			}
		case tar.TypeSymlink:
			if err := parents(e.p); err != nil {
				return nil, err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(e.p, "/"), Linkname: e.target, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
	}
	// Hard links go last: a link must come after the file it names.
	links := make([]string, 0, len(l.Hardlinks))
	for p := range l.Hardlinks {
		links = append(links, p)
	}
	sort.Strings(links)
	for _, p := range links {
		target := clean(l.Hardlinks[p])
		if _, ok := l.Files[target]; !ok {
			return nil, fmt.Errorf("hard link %s: target %s is not a file of this layer", p, target)
		}
		p = clean(p)
		if err := parents(p); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: strings.TrimPrefix(p, "/"), Linkname: strings.TrimPrefix(target, "/"), Mode: tarMode(l.Modes, target, 0o644), ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// tarMode returns the tar header mode of p: permission bits plus the sticky,
// setuid and setgid bits in tar's encoding.
func tarMode(modes map[string]os.FileMode, p string, def os.FileMode) int64 {
	m, ok := modes[p]
	if !ok {
		m = def
	}
	mode := int64(m.Perm())
	if m&os.ModeSticky != 0 {
		mode |= 0o1000
	}
	if m&os.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&os.ModeSetuid != 0 {
		mode |= 0o4000
	}
	// Accept the octal spelling 0o1777 as well as os.ModeSticky|0o777.
	mode |= int64(m & 0o7000)
	return mode
}

func goarch() string { return runtime.GOARCH }

func clean(p string) string { return path.Clean("/" + p) }

// tarDir writes the content of dir as a tar at dst, paths relative to dir.
func tarDir(dir, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
