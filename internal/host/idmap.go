package host

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// IDMap is one uid or gid mapping of a user namespace: Size ids from
// ContainerID inside map to HostID outside.
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// UserNamespace is a process started in new namespaces (a new user
// namespace and those in extra, which it owns), held until Close so that
// its namespace files can be opened or pinned.
type UserNamespace struct {
	cmd *exec.Cmd
}

// NewUserNamespace starts holder (a binary that waits for a signal, such
// as berth-pause) in a new user namespace with the given mappings, plus
// the namespaces in extra (CLONE_NEW* flags), which the new user namespace
// owns. A multi-threaded Go process cannot unshare a user namespace
// itself, so a child makes it.
func NewUserNamespace(holder string, extra uintptr, uids, gids []IDMap) (*UserNamespace, error) {
	if holder == "" {
		return nil, errors.New("no helper binary (berth-pause) to make a user namespace with")
	}
	cmd := exec.Command(holder)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | extra,
		UidMappings: sysMaps(uids),
		GidMappings: sysMaps(gids),
		// Keep setgroups allowed: containers set supplementary groups.
		GidMappingsEnableSetgroups: true,
		// No Pdeathsig: it follows the forking OS thread, which a Go
		// program may end (a locked goroutine's exit) at any time.
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a process in a new user namespace: %w", err)
	}
	return &UserNamespace{cmd: cmd}, nil
}

func sysMaps(m []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, x := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(x.ContainerID), HostID: int(x.HostID), Size: int(x.Size)}
	}
	return out
}

// Path is the /proc path of the holder's namespace file of kind ("user",
// "net", "ipc", "uts").
func (u *UserNamespace) Path(kind string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", u.cmd.Process.Pid, kind)
}

// Close kills and reaps the holder; pinned namespaces stay.
func (u *UserNamespace) Close() {
	_ = u.cmd.Process.Kill()
	_ = u.cmd.Wait()
}

// IDMapMount makes an idmapped copy of the mount tree at src (a detached
// clone, as open_tree(OPEN_TREE_CLONE) makes), mapped by the user
// namespace file usernsPath, and attaches it at dst (an existing
// directory). recursive idmaps the mounts below src too.
func IDMapMount(src, dst, usernsPath string, recursive bool) error {
	ns, err := os.Open(usernsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	setattr := uint(0)
	if recursive {
		flags |= unix.AT_RECURSIVE
		setattr = unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
	if err != nil {
		return fmt.Errorf("clone mount %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(fd, "", uint(unix.AT_EMPTY_PATH)|setattr, attr); err != nil {
		return fmt.Errorf("idmap mount of %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach idmapped mount of %s at %s: %w", src, dst, err)
	}
	return nil
}

// ProbeIDMapMounts checks that the kernel idmaps mounts of each of dirs
// and of tmpfs (berth's pod files), with holder making the user
// namespace (NewUserNamespace). scratch is a directory where a tmpfs may
// be mounted for the check. nil means pods can run in user namespaces as
// far as the kernel goes.
func ProbeIDMapMounts(holder, scratch string, dirs ...string) error {
	m := []IDMap{{ContainerID: 0, HostID: 1 << 30, Size: 65536}}
	u, err := NewUserNamespace(holder, 0, m, m)
	if err != nil {
		return err
	}
	defer u.Close()
	tmp, err := os.MkdirTemp(scratch, "idmap-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fs := filepath.Join(tmp, "tmpfs")
	if err := os.Mkdir(fs, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("idmap-probe", fs, "tmpfs", 0, "size=4k"); err != nil {
		return fmt.Errorf("mount a tmpfs: %w", err)
	}
	defer unix.Unmount(fs, unix.MNT_DETACH)
	for _, d := range append(dirs, fs) {
		ns, err := os.Open(u.Path("user"))
		if err != nil {
			return err
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, d, uint(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC))
		if err != nil {
			ns.Close()
			return fmt.Errorf("clone mount %s: %w", d, err)
		}
		err = unix.MountSetattr(fd, "", uint(unix.AT_EMPTY_PATH), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())})
		unix.Close(fd)
		ns.Close()
		if err != nil {
			return fmt.Errorf("idmapped mount of %s: %w", d, err)
		}
	}
	return nil
}
