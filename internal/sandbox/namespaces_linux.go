package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/host"
)

// mounts is the host side of a pod: the bind mounts that pin its
// namespaces and the tmpfs mounts that hold its files. An interface so that
// lifecycle tests run without mounts; hostMounts is the real one.
type mounts interface {
	pinNamespaces(dir, hostname string, kinds []nsKind, userns *userNS) (map[string]string, error)
	unpinNamespaces(paths map[string]string) error
	bindNamespace(source, target string) error
	unmountAndRemove(path string) error
	mountShm(target string) error
	unmountShm(target string) error
	mountPodFiles(target string, content int) error
	unmountPodFiles(target string) error
	isMountPoint(path string) bool
	// rename moves a dir, and the mounts in it with it.
	rename(from, to string) error
	// setHostname sets the hostname of the UTS namespace pinned at uts.
	setHostname(uts, hostname string) error
}

// hostMounts is mounts on the host.
type hostMounts struct{}

func (hostMounts) pinNamespaces(dir, hostname string, kinds []nsKind, userns *userNS) (map[string]string, error) {
	if userns != nil {
		return pinUserNamespaces(dir, hostname, kinds, userns)
	}
	return pinNamespaces(dir, hostname, kinds)
}
func (hostMounts) unpinNamespaces(paths map[string]string) error { return unpinNamespaces(paths) }
func (hostMounts) bindNamespace(source, target string) error     { return bindNamespace(source, target) }
func (hostMounts) unmountAndRemove(path string) error            { return unmountAndRemove(path) }
func (hostMounts) mountShm(target string) error                  { return mountShm(target) }
func (hostMounts) unmountShm(target string) error                { return unmountShm(target) }
func (hostMounts) mountPodFiles(target string, content int) error {
	return mountPodFiles(target, content)
}
func (hostMounts) unmountPodFiles(target string) error { return unmountPodFiles(target) }
func (hostMounts) isMountPoint(path string) bool       { return isMountPoint(path) }
func (hostMounts) rename(from, to string) error        { return os.Rename(from, to) }
func (hostMounts) setHostname(uts, hostname string) error {
	return setHostname(uts, hostname)
}

// nsKind is one namespace a pod can own.
type nsKind struct {
	name string // file name under /proc/<tid>/ns and in the pod dir
	flag int
}

// userNS is a pod's user namespace to make: its mappings, and the binary
// (berth-pause) a child process that makes it runs.
type userNS struct {
	holder     string
	uids, gids []host.IDMap
}

var (
	nsNet = nsKind{"net", unix.CLONE_NEWNET}
	nsIPC = nsKind{"ipc", unix.CLONE_NEWIPC}
	nsUTS = nsKind{"uts", unix.CLONE_NEWUTS}
)

// pinNamespaces creates the requested namespaces and keeps them alive by
// bind-mounting their nsfs files to dir/<name>, so no infra process is
// needed. It runs on a dedicated OS thread that unshares, and that thread is
// never returned to the Go scheduler (the goroutine exits locked, so the
// runtime destroys the thread): no other goroutine ever runs inside the
// pod's namespaces.
func pinNamespaces(dir, hostname string, kinds []nsKind) (paths map[string]string, err error) {
	if len(kinds) == 0 {
		return map[string]string{}, nil
	}
	type result struct {
		paths map[string]string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: this thread's namespaces are no
		// longer the process's.
		p, err := pinOnThread(dir, hostname, kinds)
		ch <- result{p, err}
	}()
	r := <-ch
	return r.paths, r.err
}

func pinOnThread(dir, hostname string, kinds []nsKind) (map[string]string, error) {
	flags := 0
	for _, k := range kinds {
		flags |= k.flag
	}
	if err := unix.Unshare(flags); err != nil {
		return nil, fmt.Errorf("unshare pod namespaces: %w", err)
	}
	for _, k := range kinds {
		switch k {
		case nsUTS:
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return nil, fmt.Errorf("set pod hostname %q: %w", hostname, err)
			}
		case nsNet:
			if err := loopbackUp(); err != nil {
				return nil, err
			}
		}
	}
	tid := unix.Gettid()
	paths := make(map[string]string, len(kinds))
	for _, k := range kinds {
		target := filepath.Join(dir, k.name+"ns")
		if err := bindNamespace(fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k.name), target); err != nil {
			unpinNamespaces(paths)
			return nil, err
		}
		paths[k.name] = target
	}
	return paths, nil
}

// setHostname sets the hostname of the UTS namespace pinned at uts (one
// pinned ahead of its pod, prepared.go) from a thread that joins it and is
// never returned to the Go scheduler, as pinNamespaces's.
func setHostname(uts, hostname string) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread is in the pod's namespace.
		ch <- func() error {
			fd, err := unix.Open(uts, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open uts namespace: %w", err)
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
				return fmt.Errorf("join uts namespace %s: %w", uts, err)
			}
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set pod hostname %q: %w", hostname, err)
			}
			return nil
		}()
	}()
	return <-ch
}

// pinUserNamespaces makes the pod's user namespace and, owned by it, the
// namespaces in kinds, and pins them all as pinNamespaces does. A child
// process makes them (a multi-threaded process cannot unshare a user
// namespace); owned by the user namespace, the network namespace lets the
// pod's root set its net.* sysctls and mount its sysfs. berthd then sets
// the hostname and brings up loopback from a thread that joins them.
func pinUserNamespaces(dir, hostname string, kinds []nsKind, u *userNS) (map[string]string, error) {
	flags := 0
	for _, k := range kinds {
		flags |= k.flag
	}
	child, err := host.NewUserNamespace(u.holder, uintptr(flags), u.uids, u.gids)
	if err != nil {
		return nil, err
	}
	defer child.Close()
	paths := map[string]string{}
	for _, name := range append([]string{"user"}, kindNames(kinds)...) {
		target := filepath.Join(dir, name+"ns")
		if err := bindNamespace(child.Path(name), target); err != nil {
			unpinNamespaces(paths)
			return nil, err
		}
		paths[name] = target
	}
	if err := setupInNamespaces(paths, hostname); err != nil {
		unpinNamespaces(paths)
		return nil, err
	}
	return paths, nil
}

func kindNames(kinds []nsKind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name
	}
	return out
}

// setupInNamespaces sets the pod's hostname in its pinned UTS namespace
// and brings up loopback in its network namespace, on a thread that joins
// them and is never returned to the Go scheduler.
func setupInNamespaces(paths map[string]string, hostname string) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread is in the pod's namespaces.
		ch <- func() error {
			if p, ok := paths["uts"]; ok {
				if err := setns(p, unix.CLONE_NEWUTS); err != nil {
					return err
				}
				if err := unix.Sethostname([]byte(hostname)); err != nil {
					return fmt.Errorf("set pod hostname %q: %w", hostname, err)
				}
			}
			if p, ok := paths["net"]; ok {
				if err := setns(p, unix.CLONE_NEWNET); err != nil {
					return err
				}
				return loopbackUp()
			}
			return nil
		}()
	}()
	return <-ch
}

func setns(path string, kind int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, kind); err != nil {
		return fmt.Errorf("join pod namespace %s: %w", path, err)
	}
	return nil
}

func bindNamespace(source, target string) error {
	f, err := os.OpenFile(target, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace pin %s: %w", target, err)
	}
	f.Close()
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		os.Remove(target)
		return fmt.Errorf("pin namespace %s: %w", target, err)
	}
	return nil
}

// unpinNamespaces unmounts and removes pinned namespace files. Missing or
// already unmounted files are fine: teardown repeats after crashes.
func unpinNamespaces(paths map[string]string) error {
	var errs []error
	for _, p := range paths {
		if err := unmountAndRemove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func unmountAndRemove(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// loopbackUp brings "lo" up in the calling thread's network namespace.
// A plain SIOCSIFFLAGS ioctl: CNI (a later step) owns all other interfaces,
// so a netlink library is not worth it for one flag.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}

// mountShm mounts the pod's /dev/shm tmpfs, shared by its containers as they
// share the pod's IPC namespace.
func mountShm(target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("shm", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount pod shm: %w", err)
	}
	return nil
}

func unmountShm(target string) error { return unmountTmpfs(target, "pod shm") }

// podFilesHeadroom is what the containers of a pod may add to its hostname,
// hosts and resolv.conf: those stay writable, as with containerd and
// CRI-O, but on a tmpfs of their own, so that a pod cannot fill the
// host's /run through them.
const podFilesHeadroom = 1 << 20

// mountPodFiles mounts the tmpfs for the pod's files at target, sized for
// content bytes plus podFilesHeadroom. Containers see only the three
// files (bind mounts), so they cannot create others there.
func mountPodFiles(target string, content int) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=0755,size=%d,nr_inodes=16", content+podFilesHeadroom)
	if err := unix.Mount("podfiles", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount the tmpfs for pod files: %w", err)
	}
	return nil
}

func unmountPodFiles(target string) error { return unmountTmpfs(target, "pod files") }

// unmountTmpfs detaches and removes a pod tmpfs; a missing or unmounted
// one is fine, so teardown can repeat after a crash.
func unmountTmpfs(target, what string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", what, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func isMountPoint(path string) bool {
	var st, parent unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false
	}
	if err := unix.Stat(filepath.Dir(path), &parent); err != nil {
		return false
	}
	// An nsfs bind mount sits on a different device than its directory.
	return st.Dev != parent.Dev
}
