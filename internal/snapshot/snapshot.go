// Package snapshot makes container root filesystems: an overlayfs of the
// image's unpacked layer directories with a per-container upper dir.
//
// Layout under a container's snapshot dir (in berth's root dir, so that the
// writable layer survives a daemon restart):
//
//	<dir>/upper   the container's writes
//	<dir>/work    overlayfs work dir
//
// The mount point itself lives in the state dir (the bundle's rootfs).
package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/host"
)

// IDMap says how a rootfs is mapped for a container in a user namespace:
// its image layers are idmapped through the namespace at UsernsPath, and
// the writable layer's top belongs to UID and GID on the host (the
// container's root), so that root in the container owns "/".
type IDMap struct {
	UsernsPath string
	UID, GID   uint32
}

// Prepare creates the upper and work dirs of a container snapshot and mounts
// the overlay at target. lowers are the image layer dirs, LOWEST first.
// idmap, when set, maps the rootfs for a user namespace.
func Prepare(dir, target string, lowers []string, idmap *IDMap) (err error) {
	if len(lowers) == 0 {
		return errors.New("image has no layers")
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	// dir is root-only: it leads to the container's files. upper keeps
	// 0755 because overlayfs gives its mode to the container's "/".
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {upper, 0o755}, {work, 0o700}, {target, 0o755}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create snapshot dir: %w", err)
		}
	}
	if idmap != nil {
		if err := os.Chown(upper, int(idmap.UID), int(idmap.GID)); err != nil {
			return fmt.Errorf("give the writable layer to the container's root: %w", err)
		}
	}
	return mountOverlay(target, lowers, fmt.Sprintf(",upperdir=%s,workdir=%s", upper, work), idmap, filepath.Join(dir, "idmap"))
}

// MountImage mounts an image's layers (LOWEST first) read-only at target:
// an image volume. idmap (only UsernsPath counts) maps it for a container
// in a user namespace; scratch is a dir for the idmapped layers' mounts.
func MountImage(target string, lowers []string, idmap *IDMap, scratch string) error {
	if len(lowers) == 0 {
		return errors.New("image has no layers")
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if len(lowers) == 1 {
		usernsPath := ""
		if idmap != nil {
			usernsPath = idmap.UsernsPath
		}
		return bindReadOnly(lowers[0], target, usernsPath)
	}
	return mountOverlay(target, lowers, "", idmap, scratch)
}

// mountOverlay mounts an overlay of lowers at target; extra adds options
// (upper and work dirs; without them the overlay is read-only). With idmap
// each lower is first idmapped onto a dir under scratch; overlayfs keeps
// its own clones of its layers' mounts, so those are detached right after.
func mountOverlay(target string, lowers []string, extra string, idmap *IDMap, scratch string) error {
	layers := lowers
	if idmap != nil {
		mapped, cleanup, err := idmapLayers(lowers, idmap.UsernsPath, scratch)
		if err != nil {
			return err
		}
		defer cleanup()
		layers = mapped
	}
	// overlayfs wants the topmost lower first.
	rev := make([]string, len(layers))
	for i, l := range layers {
		rev[len(layers)-1-i] = l
	}
	opts := "lowerdir=" + strings.Join(rev, ":") + extra
	// nodev: device nodes from an image layer or made in the rootfs are not
	// usable through it, so a host user reaching the rootfs through
	// /proc/<pid>/root cannot open one (the container's /dev is runc's own
	// tmpfs, and privileged containers get the host's devices there).
	flags := uintptr(unix.MS_NODEV)
	if extra == "" {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
		if len(opts) >= unix.Getpagesize() {
			return fmt.Errorf("mount overlay: options exceed a page (%d layers): %w", len(lowers), err)
		}
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

// idmapLayers attaches an idmapped mount of each layer dir at
// scratch/<n> and returns their paths, and a func that detaches and
// removes them.
func idmapLayers(lowers []string, usernsPath, scratch string) ([]string, func(), error) {
	var mapped []string
	cleanup := func() {
		for _, m := range mapped {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
		_ = os.RemoveAll(scratch)
	}
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, nil, err
	}
	for i, l := range lowers {
		p := filepath.Join(scratch, strconv.Itoa(i))
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			cleanup()
			return nil, nil, err
		}
		if err := host.IDMapMount(l, p, usernsPath, false); err != nil {
			cleanup()
			return nil, nil, err
		}
		mapped = append(mapped, p)
	}
	return mapped, cleanup, nil
}

// Unmount detaches the rootfs at target; an unmounted or missing target is
// not an error, so teardown can be repeated after a crash.
func Unmount(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount rootfs %s: %w", target, err)
}

// Remove unmounts target and deletes the snapshot dir with the container's
// writable layer.
func Remove(dir, target string) error {
	if err := Unmount(target); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", dir, err)
	}
	return nil
}

// IsMounted reports whether path is a mount point.
func IsMounted(path string) bool {
	mounted, err := mountinfo.Mounted(path)
	return err == nil && mounted
}

// ResolveIn resolves sub inside root as if root were "/" (symlinks in the
// image cannot lead out of it) and returns the host path it names, which
// must exist.
func ResolveIn(root, sub string) (string, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, sub, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return "", &os.PathError{Op: "open", Path: sub, Err: err}
	}
	defer unix.Close(fd)
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if p != root && !strings.HasPrefix(p, root+"/") {
		return "", fmt.Errorf("%s resolves to %s, outside %s", sub, p, root)
	}
	return p, nil
}
