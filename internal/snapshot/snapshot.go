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
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Prepare creates the upper and work dirs of a container snapshot and mounts
// the overlay at target. lowers are the image layer dirs, LOWEST first.
func Prepare(dir, target string, lowers []string) (err error) {
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
	// overlayfs wants the topmost lower first.
	rev := make([]string, len(lowers))
	for i, l := range lowers {
		rev[len(lowers)-1-i] = l
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(rev, ":"), upper, work)
	// nodev: device nodes from an image layer or made in the rootfs are not
	// usable through it, so a host user reaching the rootfs through
	// /proc/<pid>/root cannot open one (the container's /dev is runc's own
	// tmpfs, and privileged containers get the host's devices there).
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NODEV, opts); err != nil {
		if len(opts) >= unix.Getpagesize() {
			return fmt.Errorf("mount rootfs: overlay options exceed a page (%d layers): %w", len(lowers), err)
		}
		return fmt.Errorf("mount rootfs overlay at %s: %w", target, err)
	}
	return nil
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
