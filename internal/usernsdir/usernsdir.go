// Package usernsdir holds the root filesystems of containers and pause
// processes of pods in user namespaces, outside berth's root-only state
// and root dirs.
//
// runc's init, already in the pod's user namespace and so holding no
// capability over host-owned files, resolves the container's rootfs by
// path (it makes the rootfs mount private and bind-mounts it onto itself
// before pivot_root), so the pod's root (a host uid and gid of the pod's
// range) needs search permission on every directory of that path. Nothing
// else: bind-mount sources it cannot reach (pod files, volumes, image
// volumes, the pause binary) runc opens in the host and passes in, and
// the bundle (config.json) it reads as host root. So berth's state and
// root dirs stay 0700, and only this dir is made reachable:
//
//	<dir>            root:root 0711  search only: other users cannot list it
//	<dir>/<id>       root:<pod root gid> 0710  only the pod's root group gets in
//	<dir>/<id>/rootfs  the mount point (container) or the pause rootfs
//
// <id> is a container's or pod's id: 256 random bits, never listed to
// other users, and not readable even when guessed. The per-id dir is
// root-owned, so an escaped pod root cannot rename, replace or plant
// links in it that berthd would later follow, nor open it to others.
package usernsdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Dir is the directory of rootfs mount points of pods in user namespaces.
// The zero Dir has none: pods in user namespaces cannot be made.
type Dir struct{ path string }

// New is the Dir at path (made by Init).
func New(path string) Dir { return Dir{path: path} }

// Path is the dir's path.
func (d Dir) Path() string { return d.path }

// Init makes the dir, or resets its owner and mode: root:root 0711.
func (d Dir) Init() error {
	if d.path == "" {
		return nil
	}
	if err := os.MkdirAll(d.path, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", d.path, err)
	}
	if err := os.Lchown(d.path, 0, 0); err != nil {
		return err
	}
	return os.Chmod(d.path, 0o711)
}

func (d Dir) entry(id string) string { return filepath.Join(d.path, id) }

// Rootfs is id's rootfs path (which Make makes).
func (d Dir) Rootfs(id string) string { return filepath.Join(d.entry(id), "rootfs") }

// Has says whether id has an entry: its rootfs lives here, not in its
// bundle.
func (d Dir) Has(id string) bool {
	if d.path == "" || id == "" {
		return false
	}
	_, err := os.Lstat(d.entry(id))
	return err == nil
}

// Make makes id's entry for a pod whose root is host uid:gid and returns
// its rootfs path. ownRootfs gives the rootfs dir itself to the pod's root
// (the pause process's empty rootfs, in which runc makes mount points); a
// container's rootfs is a mount point, whose own root the mount decides.
func (d Dir) Make(id string, uid, gid uint32, ownRootfs bool) (rootfs string, err error) {
	if d.path == "" {
		return "", errors.New("no directory for pods in user namespaces is configured")
	}
	e := d.entry(id)
	if err := os.Mkdir(e, 0o710); err != nil {
		return "", fmt.Errorf("create %s: %w", e, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(e)
		}
	}()
	// Explicit: the umask may have taken bits off.
	if err := os.Chown(e, 0, int(gid)); err != nil {
		return "", err
	}
	if err := os.Chmod(e, 0o710); err != nil {
		return "", err
	}
	rootfs = d.Rootfs(id)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return "", err
	}
	if ownRootfs {
		if err := os.Chown(rootfs, int(uid), int(gid)); err != nil {
			return "", err
		}
	}
	return rootfs, nil
}

// Remove deletes id's entry, detaching its rootfs mount if one is left.
// A missing entry is fine.
func (d Dir) Remove(id string) error {
	if !d.Has(id) {
		return nil
	}
	rootfs := d.Rootfs(id)
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", rootfs, err)
	}
	// Never delete through a mount: that would be the container's files.
	if m, err := mountinfo.Mounted(rootfs); err == nil && m {
		return fmt.Errorf("remove %s: still mounted", rootfs)
	}
	// RemoveAll does not follow symlinks the pod's root may have made in
	// a rootfs it owns.
	if err := os.RemoveAll(d.entry(id)); err != nil {
		return fmt.Errorf("remove %s: %w", d.entry(id), err)
	}
	return nil
}

// Sweep removes the entries of ids that keep does not claim: what a
// crash left. Errors are returned joined; the rest are still removed.
func (d Dir) Sweep(keep func(id string) bool) (removed []string, err error) {
	if d.path == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(d.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		if keep(e.Name()) {
			continue
		}
		if err := d.Remove(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}
