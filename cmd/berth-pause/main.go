// Command berth-pause is PID 1 of a pod that shares its PID namespace: it
// holds the namespace open and reaps the zombies its containers leave.
// berth runs it only for such pods (other pods need no process at all).
// It uses the standard library (and golang.org/x/sys) alone to stay
// small: one runs per such pod.
//
// Run by an OCI runtime (gVisor's pod sandbox), it only pauses: the
// runtime isolated it. Started by berthd directly, as `berth-pause
// --isolate` with BERTH_POD_DIR=<the pod dir> in its environment, in a new
// PID and mount namespace and with fd 3 the write end of a pipe, it
// isolates itself first (isolate) and writes "ok\n" or what failed to fd
// 3, then closes every fd. The pod dir is in the environment, not the
// command line, which the pod's containers can read.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pauseID is the uid and gid it runs as once isolated: the Kubernetes
// pause image's user, which no image's user is likely to share.
const pauseID = 65535

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	if len(os.Args) == 2 && os.Args[1] == "--isolate" {
		msg := "ok\n"
		err := isolate(os.Getenv("BERTH_POD_DIR"))
		if err != nil {
			msg = err.Error()
		}
		unix.Write(3, []byte(msg))
		if err != nil {
			os.Exit(1)
		}
		// berthd reads until EOF: this close is the go-ahead.
		if err := unix.CloseRange(0, ^uint(0), 0); err != nil {
			for fd := 0; fd < 1024; fd++ {
				unix.Close(fd)
			}
		}
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// isolate leaves nothing of the host within the process's reach: who can
// open /proc/1/root, /proc/1/cwd or /proc/1/fd of the pod's PID 1 (the
// pod's containers see it as such) finds an empty read-only tmpfs and no
// files. Then it drops every privilege: no capabilities in any set, no
// new privileges, uid and gid 65535, not dumpable (so /proc/<pid>/root,
// cwd, fd, environ and ptrace need CAP_SYS_PTRACE even for its own uid).
// The mount namespace is its own (berthd cloned it so), so its mounts
// reach nobody else.
func isolate(dir string) error {
	if dir == "" || dir[0] != '/' {
		return fmt.Errorf("BERTH_POD_DIR %q is not an absolute path", dir)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("pause", dir, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,nr_inodes=4,mode=0555"); err != nil {
		return fmt.Errorf("mount empty root at %s: %w", dir, err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("enter empty root: %w", err)
	}
	// The old root is stacked under the new one, then detached with every
	// mount below it: nothing of the host's mount tree stays.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return dropPrivileges()
}

// dropPrivileges empties every capability set of every thread. Capability
// sets and no_new_privs are per thread, and the Go runtime has several, so
// those calls go to all of them (AllThreadsSyscall; berth-pause is built
// without cgo). Set*id in package syscall already do.
func dropPrivileges() error {
	allThreads := func(what string, trap, a1, a2, a3 uintptr) error {
		if _, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3); e != 0 {
			return fmt.Errorf("%s: %w", what, e)
		}
		return nil
	}
	// The bounding set first: dropping needs CAP_SETPCAP, gone below.
	for c := 0; c <= 63; c++ {
		_, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0)
		if e == unix.EINVAL {
			break // past the kernel's last capability
		}
		if e != 0 {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, e)
		}
	}
	if err := allThreads("clear ambient capabilities", unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return err
	}
	if err := allThreads("set no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(pauseID, pauseID, pauseID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	// Leaving uid 0 clears the permitted, effective and ambient sets.
	if err := syscall.Setresuid(pauseID, pauseID, pauseID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	// What remains is the inheritable set.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("clear capabilities: %w", e)
	}
	// After the uid change, which resets it.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set not dumpable: %w", err)
	}
	return nil
}
