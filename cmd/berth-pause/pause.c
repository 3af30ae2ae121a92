/*
 * berth-pause is PID 1 of a pod that shares its PID namespace: it holds
 * the namespace open and reaps the zombies its containers leave. berth
 * runs it only for such pods (other pods need no process at all).
 *
 * It is a small, single-threaded, static C program (built by
 * hack/build-helpers.sh), as Kubernetes' own pause is: one runs per such
 * pod, and on hosts where page faults are dear a Go binary's start costs
 * several milliseconds more. Single-threaded, it also drops its
 * credentials for the whole process with one call each, so it isolates
 * itself in the one exec berthd makes (the Go version it replaced had to
 * exec itself a second time to get the dropped credentials on every
 * thread).
 *
 * Without arguments it only pauses, as Kubernetes' pause does: run by an
 * OCI runtime (gVisor's pod sandbox, containerd's pause image in the
 * bench), which isolated it, or as the holder of a new user namespace
 * (internal/host/idmap.go).
 *
 * Started by berthd directly it runs as `berth-pause --isolate`, as root,
 * in a new PID and mount namespace, with BERTH_POD_DIR=<the pod dir> in
 * its environment, fd 3 the write end of a pipe to berthd and fd 4 the
 * sealed copy of its binary it was exec'd from: it replaces its root with
 * an empty tmpfs, drops every privilege, becomes not dumpable, writes
 * "ok\n" to fd 3, closes every fd and pauses. On failure it writes what
 * failed to fd 3 and exits 1.
 *
 * The pod dir is in the environment, not the command line, which the
 * pod's containers can read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/*
 * PAUSE_ID is the uid and gid it runs as once isolated: the Kubernetes
 * pause image's user, which no image's user is likely to share.
 */
#define PAUSE_ID 65535

/* STATUS_FD is berthd's pipe. */
#define STATUS_FD 3

/* fail reports what failed (with errno's text) to berthd and exits. */
static void fail(const char *what)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));

	if (n > 0) {
		if ((size_t)n >= sizeof msg)
			n = sizeof msg - 1;
		/* Nothing to do if berthd cannot hear it: it sees EOF. */
		if (write(STATUS_FD, msg, (size_t)n) < 0)
			_exit(1);
	}
	_exit(1);
}

/*
 * sigdown ends it on SIGTERM or SIGINT, as Kubernetes' pause does: a
 * process of the pod may end the pod's PID namespace so.
 */
static void sigdown(int sig)
{
	(void)sig;
	_exit(0);
}

/* sigreap reaps every exited child: the PID namespace's orphans are its. */
static void sigreap(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

/*
 * handle_signals installs the handlers and unblocks every signal (a mask
 * inherited blocking SIGCHLD would leave zombies). As PID 1 of its
 * namespace it gets from the pod's processes only the signals it handles.
 */
static int handle_signals(void)
{
	struct sigaction down = { .sa_handler = sigdown };
	struct sigaction reap = { .sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP | SA_RESTART };
	sigset_t none;

	if (sigemptyset(&down.sa_mask) < 0 || sigemptyset(&reap.sa_mask) < 0 || sigemptyset(&none) < 0)
		return -1;
	if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
	    sigaction(SIGCHLD, &reap, NULL) < 0)
		return -1;
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * enter_empty_root leaves nothing of the host's files within the
 * process's reach: who can open /proc/1/root or /proc/1/cwd of the pod's
 * PID 1 (the pod's containers see it as such) finds an empty read-only
 * tmpfs. The mount namespace is its own (berthd cloned it so), so its
 * mounts reach nobody else.
 */
static void enter_empty_root(const char *dir)
{
	char what[512];

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make mounts private");
	if (mount("pause", dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=4k,nr_inodes=4,mode=0555") < 0) {
		int saved = errno;

		snprintf(what, sizeof what, "mount empty root at %s", dir);
		errno = saved;
		fail(what);
	}
	if (chdir(dir) < 0)
		fail("enter empty root");
	/*
	 * The old root is stacked under the new one, then detached with
	 * every mount below it: nothing of the host's mount tree stays.
	 */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail("pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		fail("detach the host's root");
	if (chdir("/") < 0)
		fail("enter the new root");
}

/*
 * drop_privileges empties every capability set, sets no_new_privs and
 * makes it uid and gid 65535. The process has one thread, so each call
 * changes the credentials of the whole process. prctl is variadic and
 * the kernel reads its arguments as unsigned longs (refusing non-zero
 * unused ones): they are passed as such, not as ints.
 */
static void drop_privileges(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	char what[128];
	int c;

	/* The bounding set first: dropping needs CAP_SETPCAP, gone below. */
	for (c = 0; c <= 63; c++) {
		if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0UL, 0UL, 0UL) == 0)
			continue;
		if (errno == EINVAL)
			break; /* past the kernel's last capability */
		int saved = errno;

		snprintf(what, sizeof what, "drop capability %d from the bounding set", c);
		errno = saved;
		fail(what);
	}
	if (prctl(PR_CAP_AMBIENT, (unsigned long)PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0)
		fail("clear ambient capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0)
		fail("set no_new_privs");
	if (setgroups(0, NULL) < 0)
		fail("setgroups");
	if (setresgid(PAUSE_ID, PAUSE_ID, PAUSE_ID) < 0)
		fail("setresgid");
	/* Leaving uid 0 clears the permitted, effective and ambient sets. */
	if (setresuid(PAUSE_ID, PAUSE_ID, PAUSE_ID) < 0)
		fail("setresuid");
	/* What remains is the inheritable set. */
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("clear capabilities");
	/*
	 * Not dumpable: /proc/<pid>/root, cwd, fd, environ and ptrace need
	 * CAP_SYS_PTRACE even for its own uid.
	 */
	if (prctl(PR_SET_DUMPABLE, 0UL, 0UL, 0UL, 0UL) < 0)
		fail("set not dumpable");
}

/* close_all closes every fd, so /proc/1/fd of the pod's PID 1 is empty. */
static void close_all(void)
{
	long max;
	int fd;

	if (syscall(SYS_close_range, 0U, ~0U, 0U) == 0)
		return;
	/* Before Linux 5.9. */
	max = sysconf(_SC_OPEN_MAX);
	if (max < 1024)
		max = 1024;
	if (max > 1 << 20)
		max = 1 << 20;
	for (fd = 0; fd < max; fd++)
		close(fd);
}

/*
 * isolate is `--isolate`: see the header. It returns only once isolated,
 * having reported "ok\n" and closed every fd.
 */
static void isolate(const char *dir)
{
	static const char ok[] = "ok\n";

	/*
	 * Only as PID 1 of a new PID namespace, as berthd starts it (which
	 * also gives it a mount namespace of its own): run by hand in the
	 * host's namespaces, the pivot below would move the host's root.
	 */
	if (getpid() != 1) {
		errno = EPERM;
		fail("--isolate runs only as PID 1 of a new PID and mount namespace (berthd starts it so)");
	}
	if (dir == NULL || dir[0] != '/') {
		char what[512];

		snprintf(what, sizeof what, "BERTH_POD_DIR \"%s\" is not an absolute path", dir ? dir : "");
		/* fail appends errno's text: EINVAL. */
		errno = EINVAL;
		fail(what);
	}
	enter_empty_root(dir);
	drop_privileges();
	if (handle_signals() < 0)
		fail("install signal handlers");
	if (write(STATUS_FD, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1))
		fail("report to berthd");
	/* berthd reads until EOF: this close is the go-ahead. */
	close_all();
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--isolate") == 0) {
		isolate(getenv("BERTH_POD_DIR"));
	} else if (argc != 1) {
		fprintf(stderr, "usage: berth-pause [--isolate]\n"
				"  (--isolate is for berthd, which starts it in new namespaces)\n");
		return 2;
	} else if (handle_signals() < 0) {
		perror("berth-pause: install signal handlers");
		return 1;
	}
	for (;;)
		pause();
}
