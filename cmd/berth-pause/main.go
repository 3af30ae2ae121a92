// Command berth-pause is PID 1 of a pod that shares its PID namespace: it
// holds the namespace open and reaps the zombies its containers leave.
// berth runs it only for such pods (other pods need no process at all).
// It uses the standard library (and golang.org/x/sys) alone to stay
// small: one runs per such pod.
//
// Run by an OCI runtime (gVisor's pod sandbox), it only pauses: the
// runtime isolated it. Started by berthd directly it runs twice:
//
//   - `berth-pause --isolate`, as root, in a new PID and mount namespace,
//     with BERTH_POD_DIR=<the pod dir> in its environment, fd 3 the write
//     end of a pipe to berthd and fd 4 the sealed copy of its own binary
//     it was started from: it replaces its root with an empty tmpfs,
//     drops every privilege on its one locked thread and execs itself
//     from fd 4 (isolate), so that the new image starts with those
//     credentials on every thread; on failure it writes what failed to
//     fd 3 and exits.
//   - `berth-pause --isolated`: it becomes not dumpable, writes "ok\n" to
//     fd 3, closes every fd and pauses.
//
// The pod dir is in the environment, not the command line, which the
// pod's containers can read.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pauseID is the uid and gid it runs as once isolated: the Kubernetes
// pause image's user, which no image's user is likely to share.
const pauseID = 65535

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--isolated" {
		isolated()
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	if len(os.Args) == 2 && os.Args[1] == "--isolate" {
		err := isolate(os.Getenv("BERTH_POD_DIR"))
		// isolate returns only on failure.
		unix.Write(statusFD, []byte(err.Error()))
		os.Exit(1)
	}
	pause(sigs)
}

const (
	statusFD = 3 // berthd's pipe
	selfFD   = 4 // the binary berthd started, to exec again
)

// isolated is the second run: unprivileged already (the exec cleared the
// dumpable flag's protection, so that first), it reports and closes every fd.
func isolated() {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		unix.Write(statusFD, []byte("set not dumpable: "+err.Error()))
		os.Exit(1)
	}
	unix.Write(statusFD, []byte("ok\n"))
	// berthd reads until EOF: this close is the go-ahead.
	if err := unix.CloseRange(0, ^uint(0), 0); err != nil {
		for fd := 0; fd < 1024; fd++ {
			unix.Close(fd)
		}
	}
}

// pause reaps children (the PID namespace's orphans are its children)
// until SIGTERM or SIGINT.
func pause(sigs chan os.Signal) {
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
// new privileges, uid and gid 65535, and (in isolated, after the exec)
// not dumpable, so /proc/<pid>/root, cwd, fd, environ and ptrace need
// CAP_SYS_PTRACE even for its own uid.
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
	// Credentials are per thread, and the Go runtime has several: they
	// are changed on this one only, which then execs. The new image
	// starts with this thread's credentials on every thread it makes.
	runtime.LockOSThread()
	if err := dropPrivileges(); err != nil {
		return err
	}
	return execSelf([]string{os.Args[0], "--isolated"}, os.Environ())
}

// execSelf execs the binary at selfFD (execveat, AT_EMPTY_PATH: its path
// is gone with the host's root); it returns only on failure.
func execSelf(args, env []string) error {
	empty, err := unix.BytePtrFromString("")
	if err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(args)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, selfFD, uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("exec berth-pause again: %w", e)
}

// dropPrivileges empties every capability set of the calling thread, sets
// no_new_privs and makes it uid and gid 65535, with raw system calls (the
// package syscall wrappers of setresuid and the like change every thread,
// at a stop of the world each: ~10 ms for the 41 capabilities alone).
func dropPrivileges() error {
	prctl := func(what string, op, arg uintptr) error {
		if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, op, arg, 0); e != 0 {
			return fmt.Errorf("%s: %w", what, e)
		}
		return nil
	}
	// The bounding set first: dropping needs CAP_SETPCAP, gone below.
	for c := uintptr(0); c <= 63; c++ {
		_, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0)
		if e == unix.EINVAL {
			break // past the kernel's last capability
		}
		if e != 0 {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, e)
		}
	}
	if err := prctl("clear ambient capabilities", unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL); err != nil {
		return err
	}
	if err := prctl("set no_new_privs", unix.PR_SET_NO_NEW_PRIVS, 1); err != nil {
		return err
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, pauseID, pauseID, pauseID); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	// Leaving uid 0 clears the permitted, effective and ambient sets.
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, pauseID, pauseID, pauseID); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	// What remains is the inheritable set.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("clear capabilities: %w", e)
	}
	return nil
}
