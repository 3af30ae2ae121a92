package snapshot

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// bindReadOnly attaches a read-only, nodev clone of the dir src at target,
// idmapped through the user namespace file usernsPath when it is set. An
// image volume of one layer (an OCI artifact's files, a single-layer
// image) is mounted so: overlayfs refuses a read-only mount of a single
// lower dir.
func bindReadOnly(src, target, usernsPath string) error {
	if usernsPath == "" {
		// The classic calls: no need for mount_setattr (Linux 5.12).
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", src, target, err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("make the bind of %s read-only: %w", src, err)
		}
		return nil
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("clone mount %s: %w", src, err)
	}
	defer unix.Close(fd)
	ns, err := os.Open(usernsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("idmap the read-only mount of %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the mount of %s at %s: %w", src, target, err)
	}
	return nil
}
