/*
 * berth-monitor is the per-container monitor berthd runs by default: it
 * runs the OCI runtime's create, holds the container's stdio, writes the
 * CRI log file, serves the attach socket and records the exit code, and it
 * outlives berthd, so containers keep running and exits are recorded while
 * berthd is down or restarting.
 *
 * It speaks exactly the subset of conmon's command line, files and
 * protocols that berthd uses (internal/runtime/conmon), so conmon stays a
 * drop-in alternative (config key `conmon`), and the Go package's tests run
 * against both.
 *
 * Why not conmon itself: conmon is on the path of every container start,
 * and there it costs 12 ms on the project's machines (where a page fault
 * costs 20-50 us): the dynamic loading of the 12 libraries Debian's conmon
 * links (libsystemd brings gcrypt, lzma, zstd, lz4), glib's start-up and a
 * daemonizing fork of all that. That is a fifth of a pod start. This
 * program is small, static and single-threaded: its start and its fork
 * cost about a millisecond. (CRI-O answers the same cost with conmon-rs,
 * containerd with its shim.)
 *
 * Command line (conmon's flags; others are refused):
 *
 *   --api-version 1 -c ID [-u ID] [-n NAME] -r RUNTIME -b BUNDLE
 *   -p CONTAINER_PIDFILE -P MONITOR_PIDFILE -l k8s-file:PATH|none:
 *   --exit-dir DIR --persist-dir DIR [--full-attach] [--socket-dir-path D]
 *   [--syslog] [--log-level L] [--runtime-arg ARG]... [-t | -i
 *   [--leave-stdin-open]]
 *
 * with _OCI_SYNCPIPE=<fd> in the environment. It forks; the first process
 * writes the monitor's pid to MONITOR_PIDFILE and exits. The monitor runs
 * `RUNTIME ARGS... create --bundle BUNDLE --pid-file CONTAINER_PIDFILE
 * [--console-socket S] ID`, and writes {"data": PID} to the sync pipe, or
 * {"data": -1, "message": "..."} when the create failed. Then:
 *
 *   PATH (k8s-file)      CRI log lines: "<RFC3339Nano> stdout|stderr F|P <text>"
 *   BUNDLE/attach        SOCK_SEQPACKET: packets in are stdin; packets out
 *                        start with one byte, 2 stdout or 3 stderr
 *   BUNDLE/ctl           fifo: "1 <height> <width>\n" resizes the terminal,
 *                        "2 0 0\n" reopens the log file (kubelet's rotation),
 *                        "3 0 0\n" (berth's own) holds BUNDLE/exec.fifo open
 *                        for reading (hold_exec_fifo)
 *   PERSIST/oom          written when the container's memory cgroup OOM-killed
 *   PERSIST/exit, EXITDIR/ID   the exit code (128+N for signal N), each
 *                        written to a temp file and renamed
 *
 * and it exits once the container has exited and its output is drained.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define VERSION "berth-monitor 1 (conmon-compatible, api-version 1)"

/* BUF is one read of the container's output: one log entry, one packet. */
#define BUF 8192
/* IN_BUF is the largest attach input packet taken whole (a SOCK_SEQPACKET
 * read drops the rest of a longer one); berthd sends at most 32 KiB. */
#define IN_BUF 65536
/* MAX_CLIENTS bounds the attach connections held at once. */
#define MAX_CLIENTS 16
/* MAX_RUNTIME_ARGS bounds --runtime-arg. */
#define MAX_RUNTIME_ARGS 64
/* MSG_MAX bounds the runtime's stderr carried in a failure message. */
#define MSG_MAX 4096
/* Attach packet stream bytes, as conmon's. */
#define ATTACH_STDOUT 2
#define ATTACH_STDERR 3
/* ctl fifo message types, as conmon's. */
#define CTL_RESIZE 1
#define CTL_REOPEN 2
/* berth-monitor's own: hold the exec fifo (see hold_exec_fifo). */
#define CTL_HOLD_FIFO 3

static struct {
	const char *cid, *runtime, *bundle, *pidfile, *monitor_pidfile;
	const char *log_path; /* NULL: no log */
	const char *exit_dir, *persist_dir;
	const char *runtime_args[MAX_RUNTIME_ARGS];
	int n_runtime_args;
	int terminal, stdin_, leave_stdin_open, syslog_;
} opt;

static int sync_fd = -1;

/* say logs a monitor error: to stderr before it daemonizes, to syslog after
 * (with --syslog), as conmon does. */
static int daemonized;
static void say(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!daemonized)
		dprintf(2, "berth-monitor: %s\n", msg);
	else if (opt.syslog_)
		syslog(LOG_ERR, "%s: %s", opt.cid ? opt.cid : "?", msg);
}

static void fail(const char *fmt, ...);

static void usage_fail(const char *why, const char *arg)
{
	if (daemonized) /* a spare's command line: berthd hears on the sync pipe */
		fail("%s%s%s", why, arg ? ": " : "", arg ? arg : "");
	dprintf(2, "berth-monitor: %s%s%s\n", why, arg ? ": " : "", arg ? arg : "");
	exit(1);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **val = NULL;
		if (!strcmp(a, "--version")) {
			printf("%s\n", VERSION);
			exit(0);
		} else if (!strcmp(a, "--full-attach")) {
			continue; /* the attach socket is always BUNDLE/attach */
		} else if (!strcmp(a, "--syslog")) {
			opt.syslog_ = 1;
			continue;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--terminal")) {
			opt.terminal = 1;
			continue;
		} else if (!strcmp(a, "-i") || !strcmp(a, "--stdin")) {
			opt.stdin_ = 1;
			continue;
		} else if (!strcmp(a, "--leave-stdin-open")) {
			opt.leave_stdin_open = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage_fail("missing value for", a);
		const char *v = argv[++i];
		const char *ignored;
		if (!strcmp(a, "-c") || !strcmp(a, "--cid"))
			val = &opt.cid;
		else if (!strcmp(a, "-r") || !strcmp(a, "--runtime"))
			val = &opt.runtime;
		else if (!strcmp(a, "-b") || !strcmp(a, "--bundle"))
			val = &opt.bundle;
		else if (!strcmp(a, "-p") || !strcmp(a, "--container-pidfile"))
			val = &opt.pidfile;
		else if (!strcmp(a, "-P") || !strcmp(a, "--conmon-pidfile"))
			val = &opt.monitor_pidfile;
		else if (!strcmp(a, "--exit-dir"))
			val = &opt.exit_dir;
		else if (!strcmp(a, "--persist-dir"))
			val = &opt.persist_dir;
		else if (!strcmp(a, "-u") || !strcmp(a, "--cuuid") || !strcmp(a, "-n") || !strcmp(a, "--name") ||
			 !strcmp(a, "--socket-dir-path") || !strcmp(a, "--log-level"))
			val = &ignored;
		else if (!strcmp(a, "--api-version")) {
			if (strcmp(v, "1"))
				usage_fail("only --api-version 1 is spoken, not", v);
			continue;
		} else if (!strcmp(a, "-l") || !strcmp(a, "--log-path")) {
			if (!strncmp(v, "k8s-file:", 9))
				opt.log_path = v + 9;
			else if (!strcmp(v, "none:") || !strcmp(v, "none"))
				opt.log_path = NULL;
			else if (v[0] == '/')
				opt.log_path = v;
			else
				usage_fail("log driver not supported (k8s-file:PATH or none:)", v);
			continue;
		} else if (!strcmp(a, "--runtime-arg")) {
			if (opt.n_runtime_args == MAX_RUNTIME_ARGS)
				usage_fail("too many --runtime-arg", NULL);
			opt.runtime_args[opt.n_runtime_args++] = v;
			continue;
		} else
			usage_fail("unknown flag", a);
		*val = v;
	}
	if (!opt.cid || !opt.runtime || !opt.bundle || !opt.pidfile || !opt.monitor_pidfile || !opt.exit_dir ||
	    !opt.persist_dir)
		usage_fail("-c, -r, -b, -p, -P, --exit-dir and --persist-dir are required", NULL);
	if (!opt.cid[0] || strchr(opt.cid, '/') || strchr(opt.cid, '.'))
		usage_fail("container id must be a plain name", opt.cid);
	if (opt.log_path && opt.log_path[0] != '/')
		usage_fail("log path must be absolute", opt.log_path);
	if (opt.terminal && opt.stdin_)
		usage_fail("-t and -i together are not supported (stdin goes through the terminal)", NULL);
}

/* write_all writes the whole buffer, retrying on EINTR and short writes. */
static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* write_file_atomic writes text to dir/name through a temp file whose name
 * has a dot (berthd's exit watch ignores names with dots), then renames it:
 * a reader never sees a half-written file. */
static int write_file_atomic(const char *dir, const char *name, const char *text)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp ||
	    snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	/* Synced before the rename: after a host crash the file holds the
	 * code or is absent, never empty. */
	if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, dst) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* report writes the create's outcome to berthd's sync pipe, once. */
static void report(int pid, const char *message)
{
	if (sync_fd < 0)
		return;
	char out[MSG_MAX * 6 + 64];
	size_t n = (size_t)snprintf(out, sizeof out, "{\"data\": %d", pid);
	if (message) {
		n += (size_t)snprintf(out + n, sizeof out - n, ", \"message\": \"");
		/* JSON-escape: the message is the runtime's stderr. */
		for (const unsigned char *m = (const unsigned char *)message; *m && n + 8 < sizeof out; m++) {
			if (*m == '"' || *m == '\\')
				n += (size_t)snprintf(out + n, sizeof out - n, "\\%c", *m);
			else if (*m < 0x20 || *m == 0x7f)
				n += (size_t)snprintf(out + n, sizeof out - n, "\\u%04x", *m);
			else
				out[n++] = (char)*m;
		}
		n += (size_t)snprintf(out + n, sizeof out - n, "\"");
	}
	n += (size_t)snprintf(out + n, sizeof out - n, "}\n");
	(void)write_all(sync_fd, out, n);
	close(sync_fd);
	sync_fd = -1;
}

/* fail reports a failed create and exits: nothing is running yet that
 * the monitor must watch. berthd removes what was made. */
static __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	say("%s", msg);
	report(-1, msg);
	exit(1);
}

/* ---- the CRI log ---------------------------------------------------- */

static int log_fd = -1;

static void open_log(void)
{
	if (!opt.log_path)
		return;
	/* The log dir is kubelet's, but a pod with a hostPath there could
	 * plant something at the path: never write through a symlink
	 * (O_NOFOLLOW), never wait for a FIFO's reader (O_NONBLOCK, then
	 * only a regular file is kept). */
	int fd = open(opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd < 0) {
		say("opening log %s: %s", opt.log_path, strerror(errno));
		return;
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
}

/* timestamp formats now as conmon does: local time, RFC 3339, nanoseconds. */
static int timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	long off = tm.tm_gmtoff;
	char sign = '+';
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	return snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09ld%c%02ld:%02ld", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec, sign, off / 3600,
			(off % 3600) / 60);
}

/* writev_all writes every iovec, resuming after short writes and EINTR.
 * It changes iov. */
static int writev_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* LOG_IOV is how many iovecs one writev of log entries takes. */
#define LOG_IOV 1020

/* write_log writes one read of output as CRI log entries: one per line,
 * "F" for a full line, "P" (and a newline) for the rest without one, all
 * under one timestamp and in as few writev calls as fit (a container
 * printing empty lines must not make its monitor spend a system call per
 * line). A failed write (disk full) loses entries, never the container. */
static void write_log(const char *stream, const char *buf, size_t len)
{
	if (log_fd < 0)
		return;
	char ts[64], full[96], part[96];
	int tslen = timestamp(ts, sizeof ts);
	int flen = snprintf(full, sizeof full, "%.*s %s F ", tslen, ts, stream);
	int plen = snprintf(part, sizeof part, "%.*s %s P ", tslen, ts, stream);
	struct iovec iov[LOG_IOV];
	int cnt = 0;
	while (len > 0) {
		const char *nl = memchr(buf, '\n', len);
		size_t line = nl ? (size_t)(nl - buf) + 1 : len;
		if (nl) {
			iov[cnt++] = (struct iovec){.iov_base = full, .iov_len = (size_t)flen};
			iov[cnt++] = (struct iovec){.iov_base = (void *)buf, .iov_len = line};
		} else {
			iov[cnt++] = (struct iovec){.iov_base = part, .iov_len = (size_t)plen};
			iov[cnt++] = (struct iovec){.iov_base = (void *)buf, .iov_len = line};
			iov[cnt++] = (struct iovec){.iov_base = "\n", .iov_len = 1};
		}
		buf += line;
		len -= line;
		if (cnt > LOG_IOV - 3 || len == 0) {
			if (writev_all(log_fd, iov, cnt) < 0)
				return;
			cnt = 0;
		}
	}
}

/* ---- attach clients ------------------------------------------------- */

/* A client that shut down its sending side still receives output. Output
 * a client cannot take at once waits in its queue, up to QUEUE_MAX; a
 * client that falls further behind is disconnected (it sees its attach
 * end) rather than stall the container or silently lose output. */
#define QUEUE_MAX (1 << 20)
static struct client {
	int fd;
	int reading;   /* still sends stdin */
	char *queue;   /* packets not sent yet, each: 2-byte length, bytes */
	size_t queued; /* bytes in queue */
} clients[MAX_CLIENTS];
static int n_clients;

static void drop_client(int i)
{
	close(clients[i].fd);
	free(clients[i].queue);
	clients[i] = clients[--n_clients];
}

/* enqueue appends a packet to client c's queue; -1 when it is full. */
static int enqueue(struct client *c, const char *pkt, size_t len)
{
	if (c->queued + 2 + len > QUEUE_MAX)
		return -1;
	if (!c->queue && !(c->queue = malloc(QUEUE_MAX)))
		return -1;
	c->queue[c->queued] = (char)(len >> 8);
	c->queue[c->queued + 1] = (char)len;
	memcpy(c->queue + c->queued + 2, pkt, len);
	c->queued += 2 + len;
	return 0;
}

static int send_again(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS; }

/* flush_client sends what client i has queued, as far as it goes; it
 * returns -1 when the client is gone. */
static int flush_client(int i)
{
	struct client *c = &clients[i];
	size_t off = 0;
	while (off < c->queued) {
		size_t len = ((size_t)(unsigned char)c->queue[off] << 8) | (unsigned char)c->queue[off + 1];
		if (send(c->fd, c->queue + off + 2, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (send_again())
				break;
			return -1;
		}
		off += 2 + len;
	}
	memmove(c->queue, c->queue + off, c->queued - off);
	c->queued -= off;
	if (!c->queued) {
		free(c->queue);
		c->queue = NULL;
	}
	return 0;
}

/* to_clients sends output to every attach client, or queues it. */
static void to_clients(int stream, const char *buf, size_t len)
{
	char pkt[BUF + 1];
	if (n_clients == 0)
		return;
	pkt[0] = (char)stream;
	memcpy(pkt + 1, buf, len);
	for (int i = 0; i < n_clients; i++) {
		struct client *c = &clients[i];
		if (!c->queued) {
			if (send(c->fd, pkt, len + 1, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
				continue;
			if (!send_again()) {
				drop_client(i--);
				continue;
			}
		}
		if (enqueue(c, pkt, len + 1) < 0) {
			say("attach client %zu bytes behind: disconnected", c->queued);
			drop_client(i--);
		}
	}
}

/* ---- the runtime's create ------------------------------------------- */

static int stdout_r = -1, stderr_r = -1, stdin_w = -1, master = -1;

/* console_listen listens where the runtime sends the terminal's master:
 * in the bundle dir (root-only, unlike /tmp, which pods may share through
 * a hostPath), named through /proc/<pid>/fd/<dir fd> since the bundle
 * path may be longer than a socket address holds. */
static char console_path[64];
static int bundle_fd = -1;
static int console_listen(void)
{
	char bindpath[64];
	snprintf(bindpath, sizeof bindpath, "/proc/self/fd/%d/console", bundle_fd);
	snprintf(console_path, sizeof console_path, "/proc/%d/fd/%d/console", (int)getpid(), bundle_fd);
	unlinkat(bundle_fd, "console", 0);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, bindpath);
	mode_t um = umask(0077);
	int bound = fd >= 0 ? bind(fd, (struct sockaddr *)&sa, sizeof sa) : -1;
	umask(um);
	if (bound < 0 || listen(fd, 1) < 0)
		fail("console socket in %s: %s", opt.bundle, strerror(errno));
	return fd;
}

static void console_cleanup(void)
{
	if (console_path[0]) {
		unlinkat(bundle_fd, "console", 0);
		console_path[0] = 0;
	}
}

/* console_receive takes the terminal master the runtime sent. */
static int console_receive(int lfd)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, 0) <= 0)
		return -1; /* the runtime exited without connecting */
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return -1;
	/* Only root (the runtime) hands over the terminal. */
	struct ucred cred;
	socklen_t cl = sizeof cred;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0) {
		close(c);
		return -1;
	}
	char name[64], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
	int fd = -1;
	if (recvmsg(c, &m, MSG_CMSG_CLOEXEC) > 0) {
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	}
	close(c);
	return fd;
}

/* read_small reads up to size-1 bytes of a small file (pid file, cgroup
 * file) into buf, NUL-terminated; -1 when it is missing or empty. */
static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* read_pid reads a pid file the runtime wrote. */
static int read_pid(const char *path)
{
	char b[32];
	if (read_small(path, b, sizeof b) < 0)
		return -1;
	char *end;
	long pid = strtol(b, &end, 10);
	if (pid <= 0 || pid > INT_MAX || (*end && *end != '\n'))
		return -1;
	return (int)pid;
}

/* spawn_runtime starts the runtime with the given stdio. vfork: the child
 * shares this small address space until it execs, so neither process
 * pays copy-on-write faults for a fork (dear on hosts where a page fault
 * costs tens of microseconds). The child only makes system calls on its
 * own stack before it execs. A function of its own, so that no caller's
 * local lives across the vfork. */
static __attribute__((noinline)) pid_t spawn_runtime(const char **argv, int i0, int o1, int e2, sigset_t *oldmask)
{
	pid_t self = getpid();
	pid_t rt = vfork();
	if (rt != 0)
		return rt;
	/* The runtime dies with its monitor: berthd kills the monitor to
	 * undo a create that overran its deadline. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != self)
		_exit(1);
	if (dup2(i0, 0) < 0 || dup2(o1, 1) < 0 || dup2(e2, 2) < 0)
		_exit(126);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], (char *const *)argv);
	static const char msg[] = "cannot execute the OCI runtime\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(127);
}

/* run_create runs the runtime's create and returns the container's pid;
 * on failure it reports and exits. */
static int run_create(sigset_t *oldmask)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
	int lfd = opt.terminal ? console_listen() : -1;
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		fail("/dev/null: %s", strerror(errno));
	if (!opt.terminal) {
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
			fail("pipes: %s", strerror(errno));
		if (opt.stdin_ && pipe2(in, O_CLOEXEC) < 0)
			fail("stdin pipe: %s", strerror(errno));
	}

	const char *argv[MAX_RUNTIME_ARGS + 12];
	int n = 0;
	argv[n++] = opt.runtime;
	for (int i = 0; i < opt.n_runtime_args; i++)
		argv[n++] = opt.runtime_args[i];
	argv[n++] = "create";
	argv[n++] = "--bundle";
	argv[n++] = opt.bundle;
	argv[n++] = "--pid-file";
	argv[n++] = opt.pidfile;
	if (opt.terminal) {
		argv[n++] = "--console-socket";
		argv[n++] = console_path;
	}
	argv[n++] = opt.cid;
	argv[n] = NULL;

	int i0 = opt.terminal ? devnull : (opt.stdin_ ? in[0] : devnull);
	int o1 = opt.terminal ? devnull : out[1];
	int e2 = opt.terminal ? devnull : err[1];
	unsetenv("_OCI_SYNCPIPE");
	pid_t rt = spawn_runtime(argv, i0, o1, e2, oldmask);
	if (rt < 0)
		fail("vfork: %s", strerror(errno));
	close(devnull);
	if (!opt.terminal) {
		close(out[1]);
		close(err[1]);
		stdout_r = out[0];
		stderr_r = err[0];
		if (opt.stdin_) {
			close(in[0]);
			stdin_w = in[1];
			fcntl(stdin_w, F_SETFL, O_NONBLOCK);
		}
	}

	int st;
	while (waitpid(rt, &st, 0) < 0) {
		if (errno != EINTR)
			fail("waiting for the runtime: %s", strerror(errno));
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		/* The runtime's stderr is the error message (berthd prefers
		 * its --log file when it has one). */
		char msg[MSG_MAX] = "";
		size_t got = 0;
		if (stderr_r >= 0) {
			fcntl(stderr_r, F_SETFL, O_NONBLOCK);
			ssize_t k;
			while (got < sizeof msg - 1 && (k = read(stderr_r, msg + got, sizeof msg - 1 - got)) > 0)
				got += (size_t)k;
			msg[got] = 0;
		}
		console_cleanup();
		if (!got) {
			if (WIFEXITED(st))
				snprintf(msg, sizeof msg, "runtime exited with status %d", WEXITSTATUS(st));
			else
				snprintf(msg, sizeof msg, "runtime killed by signal %d", WTERMSIG(st));
		}
		fail("%s", msg);
	}
	if (opt.terminal) {
		master = console_receive(lfd);
		close(lfd);
		console_cleanup();
		if (master < 0)
			fail("the runtime sent no terminal on the console socket");
		fcntl(master, F_SETFL, O_NONBLOCK);
	}
	int pid = read_pid(opt.pidfile);
	if (pid <= 0)
		fail("the runtime wrote no container pid to %s", opt.pidfile);
	return pid;
}

/* ---- OOM ------------------------------------------------------------ */

/* oom_file is the container's memory cgroup file that counts OOM kills
 * (cgroup v1 memory.oom_control, v2 memory.events), found at create. */
static char oom_file[PATH_MAX];
static long oom_base = -1;

static long oom_kills(void)
{
	char b[1024];
	if (read_small(oom_file, b, sizeof b) < 0)
		return -1;
	char *p = strstr(b, "oom_kill ");
	return p ? strtol(p + 9, NULL, 10) : -1;
}

static void oom_setup(int pid)
{
	char path[64], b[4096];
	snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
	if (read_small(path, b, sizeof b) < 0)
		return;
	char *v1 = NULL, *v2 = NULL;
	for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n")) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		const char *ctrls = c1 + 1;
		if (!strcmp(ctrls, ""))
			v2 = c2 + 1;
		for (const char *s = ctrls; *s;) {
			size_t l = strcspn(s, ",");
			if (l == 6 && !strncmp(s, "memory", 6))
				v1 = c2 + 1;
			s += l + (s[l] == ',');
		}
	}
	struct stat sb;
	if (v1)
		snprintf(oom_file, sizeof oom_file, "/sys/fs/cgroup/memory%s/memory.oom_control", v1);
	else if (v2 && stat("/sys/fs/cgroup/cgroup.controllers", &sb) == 0)
		snprintf(oom_file, sizeof oom_file, "/sys/fs/cgroup%s/memory.events", v2);
	else if (v2)
		snprintf(oom_file, sizeof oom_file, "/sys/fs/cgroup/unified%s/memory.events", v2);
	oom_base = oom_kills();
}

/* ---- main loop ------------------------------------------------------ */

/*
 * hold_exec_fifo opens BUNDLE/exec.fifo (berthd's symlink to the OCI
 * runtime's exec fifo) for reading and keeps it open until the monitor
 * exits. runc's init, blocked opening the fifo for writing, then writes
 * its byte and runs the container's process; without a reader that
 * outlives berthd, a berthd killed between its own open of the fifo and
 * init's write leaves init a write without a reader (EPIPE), and the
 * container dead before it started. berthd reads the byte and removes the
 * fifo itself (internal/runtime/runc_start.go). A repeated ask opens it
 * again (berthd's retry waits for the open), then lets the old fd go.
 */
static void hold_exec_fifo(void)
{
	static int held = -1;
	int fd = openat(bundle_fd, "exec.fifo", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		close(fd);
		return;
	}
	if (held >= 0)
		close(held);
	held = fd;
}

static void handle_ctl(int ctl)
{
	static char line[128];
	static size_t have;
	static int discarding; /* in the rest of an overlong line */
	ssize_t n = read(ctl, line + have, sizeof line - 1 - have);
	if (n <= 0)
		return;
	have += (size_t)n;
	char *nl;
	while ((nl = memchr(line, '\n', have))) {
		*nl = 0;
		if (discarding) {
			discarding = 0;
			size_t used = (size_t)(nl - line) + 1;
			memmove(line, nl + 1, have - used);
			have -= used;
			continue;
		}
		int type, h, w;
		if (sscanf(line, "%d %d %d", &type, &h, &w) == 3) {
			if (type == CTL_RESIZE && master >= 0 && h > 0 && w > 0 && h <= 0xffff && w <= 0xffff) {
				struct winsize ws = {.ws_row = (unsigned short)h, .ws_col = (unsigned short)w};
				ioctl(master, TIOCSWINSZ, &ws);
			} else if (type == CTL_REOPEN) {
				open_log();
			} else if (type == CTL_HOLD_FIFO) {
				hold_exec_fifo();
			}
		}
		size_t used = (size_t)(nl - line) + 1;
		memmove(line, nl + 1, have - used);
		have -= used;
	}
	if (have == sizeof line - 1) {
		have = 0; /* an overlong line: drop it, up to its newline */
		discarding = 1;
	}
}

/* pump reads one buffer of output into the log and to attach clients. It
 * returns 1 after output, 0 at the end of the stream (the fd is closed),
 * -1 when there is nothing to read now. */
static int pump(int *fd, const char *stream, int attach)
{
	char buf[BUF];
	ssize_t n = read(*fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n <= 0) { /* EOF; EIO from a terminal whose last user left */
		close(*fd);
		*fd = -1;
		return 0;
	}
	write_log(stream, buf, (size_t)n);
	to_clients(attach, buf, (size_t)n);
	return 1;
}

/* DRAIN_MAX bounds what is read after the container's exit. */
#define DRAIN_MAX (1 << 20)

/* drain reads what is left without waiting, and at most DRAIN_MAX: a
 * process the container left behind (in a shared or the host's PID
 * namespace) may hold the pipe open and keep it full. */
static void drain(int *fd, const char *stream, int attach)
{
	if (*fd < 0)
		return;
	fcntl(*fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < DRAIN_MAX / BUF && pump(fd, stream, attach) > 0; i++)
		;
}

/* stdin_pending holds attach input the container's stdin could not take
 * yet: while it is there, clients are not read (backpressure), so the
 * monitor never blocks on a container that does not read its stdin. */
static char stdin_pending[IN_BUF];
static size_t pending_len, pending_off;

static int input_fd(void) { return opt.terminal ? master : stdin_w; }

static void close_stdin(void)
{
	if (stdin_w >= 0) {
		close(stdin_w);
		stdin_w = -1;
	}
	pending_len = pending_off = 0;
}

/* feed writes what it can of buf to the container's stdin (non-blocking)
 * and keeps the rest pending. */
static void feed(const char *buf, size_t len)
{
	int in = input_fd();
	while (len > 0 && in >= 0) {
		ssize_t n = write(in, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) { /* EPIPE: nobody reads the container's stdin any more */
			if (!opt.terminal)
				close_stdin();
			pending_len = pending_off = 0;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
	if (len > 0 && in >= 0) {
		memmove(stdin_pending, buf, len);
		pending_len = len;
		pending_off = 0;
	} else {
		pending_len = pending_off = 0;
	}
}

static void flush_pending(void)
{
	size_t len = pending_len - pending_off;
	static char tmp[IN_BUF];
	memcpy(tmp, stdin_pending + pending_off, len);
	feed(tmp, len);
}

/* client_input forwards one attach packet to the container's stdin. */
static void client_input(int i)
{
	static char buf[IN_BUF];
	ssize_t n = recv(clients[i].fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The client is done sending. As conmon: with -i and without
		 * --leave-stdin-open, the container's stdin ends with it. */
		if (opt.stdin_ && !opt.leave_stdin_open)
			close_stdin();
		if (n < 0)
			drop_client(i);
		else
			clients[i].reading = 0;
		return;
	}
	feed(buf, (size_t)n);
}

static int exit_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

/* ARGS_FD is a spare monitor's pipe from berthd: its command line. */
#define ARGS_FD 4
/* ARGS_MAX bounds a spare's command line. */
#define ARGS_MAX 16384

/* take_args is a spare monitor taking its job: it reads its command line
 * (NUL-separated arguments, without argv[0]) from ARGS_FD, and writes it
 * over its own arguments, which berthd made long enough (a padding
 * argument), so that /proc/<pid>/cmdline names the container's files as
 * an exec'd monitor's does (berthd and the tests find monitors by it). It
 * exits when berthd closes the pipe without a job. */
static void take_args(int argc, char **argv)
{
	static char block[ARGS_MAX];
	static char *args[MAX_RUNTIME_ARGS * 2 + 64];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof block && (n = read(ARGS_FD, block + len, sizeof block - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(1);
		len += (size_t)n;
	}
	close(ARGS_FD);
	if (len == 0)
		_exit(0); /* no job: berthd stopped, or died */
	if (len == sizeof block || block[len - 1] != 0)
		_exit(1);
	/* The argument area: argv[0] up to the end of the last argument. */
	char *area = argv[0];
	size_t room = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - area);
	const char *name = "berth-monitor";
	size_t nlen = strlen(name) + 1;
	if (nlen + len > room)
		_exit(1); /* berthd checks the room before it hands a job over */
	int na = 0;
	args[na++] = (char *)name;
	for (size_t off = 0; off < len; off += strlen(block + off) + 1) {
		if (na == (int)(sizeof args / sizeof *args) - 1)
			usage_fail("too many arguments", NULL);
		args[na++] = block + off;
	}
	args[na] = NULL;
	memset(area, 0, room + 1);
	memcpy(area, name, nlen);
	memcpy(area + nlen, block, len);
	parse_args(na, args);
}

int main(int argc, char **argv)
{
	/* A spare: started ahead of any container, it takes its command line
	 * from berthd later, so that the exec and the fork to the background
	 * are off a container create's path. */
	int spare = argc == 3 && !strcmp(argv[1], "--spare");
	if (!spare)
		parse_args(argc, argv);
	const char *sp = getenv("_OCI_SYNCPIPE");
	if (sp) {
		char *end;
		long fd = strtol(sp, &end, 10);
		if (*end || fd < 3 || fd > INT_MAX || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
			usage_fail("_OCI_SYNCPIPE is not an open fd", sp);
		sync_fd = (int)fd;
	}
	/* Nothing else the caller left open stays, nor reaches the runtime
	 * or the container. */
	if (spare && (sync_fd != 3 || fcntl(ARGS_FD, F_SETFD, FD_CLOEXEC) < 0))
		usage_fail("a spare needs _OCI_SYNCPIPE=3 and its command line on fd 4", NULL);
	int keep = spare ? ARGS_FD : sync_fd; /* the highest fd kept */
	if (sync_fd < 0) {
		syscall(SYS_close_range, 3, ~0U, 0);
	} else {
		if (sync_fd > 3)
			syscall(SYS_close_range, 3, (unsigned)sync_fd - 1, 0);
		syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0);
	}
	signal(SIGPIPE, SIG_IGN);

	pid_t child = fork();
	if (child < 0)
		usage_fail("fork", strerror(errno));
	if (child > 0 && spare) {
		/* The spare writes its pid file when it has a job; berthd
		 * hears its pid now, to end it if the job is abandoned before. */
		dprintf(1, "%d\n", (int)child);
		_exit(0);
	}
	if (child > 0) {
		char b[32];
		snprintf(b, sizeof b, "%d", child);
		int fd = open(opt.monitor_pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || write_all(fd, b, strlen(b)) < 0) {
			dprintf(2, "berth-monitor: writing %s: %s\n", opt.monitor_pidfile, strerror(errno));
			kill(child, SIGKILL);
			_exit(1);
		}
		close(fd);
		_exit(0);
	}

	/* The monitor: its own session, no terminal, stdio on /dev/null. */
	setsid();
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	daemonized = 1;
	if (spare) {
		take_args(argc, argv);
		char b[32];
		snprintf(b, sizeof b, "%d", (int)getpid());
		int fd = open(opt.monitor_pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || write_all(fd, b, strlen(b)) < 0)
			fail("writing %s: %s", opt.monitor_pidfile, strerror(errno));
		close(fd);
		/* As an exec'd one's: not berthd's dir, which it would hold. */
		if (chdir(opt.persist_dir) < 0)
			say("chdir %s: %s", opt.persist_dir, strerror(errno));
	}
	if (opt.syslog_)
		openlog("berth-monitor", LOG_PID, LOG_DAEMON);
	/* The container's init is reparented here when the runtime exits. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	sigset_t mask, oldmask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	/* A stop of whatever ran berthd (a service manager killing its
	 * cgroup, a terminal's ^C) must not end the monitors: the containers
	 * outlive berthd, and their exits must be recorded. SIGKILL still
	 * ends a monitor. The runtime gets the old mask back. */
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail("signalfd: %s", strerror(errno));

	/* The ctl fifo and the attach socket exist before berthd hears of
	 * the container: it may resize or attach before the start. */
	bundle_fd = open(opt.bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (bundle_fd < 0)
		fail("bundle %s: %s", opt.bundle, strerror(errno));
	unlinkat(bundle_fd, "ctl", 0);
	if (mkfifoat(bundle_fd, "ctl", 0600) < 0)
		fail("ctl fifo in %s: %s", opt.bundle, strerror(errno));
	/* Read-write: the fifo never reads as closed between writers. */
	int ctl = openat(bundle_fd, "ctl", O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (ctl < 0)
		fail("ctl fifo: %s", strerror(errno));
	/* The bundle path may be longer than a socket address holds. */
	unlinkat(bundle_fd, "attach", 0);
	int asock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/attach", bundle_fd);
	/* Root-only from birth: the umask applies to the socket's inode. */
	mode_t um = umask(0077);
	int bound = asock >= 0 ? bind(asock, (struct sockaddr *)&sa, sizeof sa) : -1;
	umask(um);
	if (bound < 0 || listen(asock, 8) < 0)
		fail("attach socket in %s: %s", opt.bundle, strerror(errno));

	open_log();
	if (opt.log_path && log_fd < 0)
		fail("opening log file %s: %s", opt.log_path, strerror(errno));

	int cpid = run_create(&oldmask);
	/* As conmon: the OOM killer should pick the container, not the
	 * process that records its exit (fails without CAP_SYS_RESOURCE).
	 * After the create: the runtime and the container would inherit
	 * it, and its floor with it. */
	int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (adj >= 0) {
		(void)!write(adj, "-1000", 5);
		close(adj);
	}
	oom_setup(cpid);
	report(cpid, NULL);

	int status = 0, exited = 0;
	while (!exited) {
		struct pollfd fds[6 + MAX_CLIENTS];
		int nf = 0;
		fds[nf++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = ctl, .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = asock, .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = opt.terminal ? master : stdout_r, .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = stderr_r, .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = pending_len ? input_fd() : -1, .events = POLLOUT};
		/* Every client is polled, for its hang-up at least. */
		int polled = n_clients;
		for (int i = 0; i < n_clients; i++) {
			short ev = 0;
			if (clients[i].reading && !pending_len)
				ev |= POLLIN;
			if (clients[i].queued)
				ev |= POLLOUT;
			fds[nf++] = (struct pollfd){.fd = clients[i].fd, .events = ev};
		}
		if (poll(fds, (nfds_t)nf, -1) < 0) {
			if (errno == EINTR)
				continue;
			/* Without its loop the monitor cannot know the exit:
			 * record none (berthd reports the monitor lost). */
			say("poll: %s", strerror(errno));
			return 1;
		}
		/* Clients first, from the last: dropping one moves the last
		 * into its place. */
		if (fds[5].revents)
			flush_pending();
		for (int i = polled - 1; i >= 0; i--) {
			short re = fds[6 + i].revents;
			if ((re & POLLOUT) && flush_client(i) < 0)
				drop_client(i);
			else if ((re & POLLIN) && !pending_len)
				client_input(i); /* may drop it */
			else if (re & (POLLHUP | POLLERR | POLLNVAL))
				drop_client(i);
		}
		/* Output before the exit: what the container wrote before it
		 * exited is logged before its exit is recorded. */
		if (fds[3].revents) {
			if (opt.terminal)
				pump(&master, "stdout", ATTACH_STDOUT);
			else
				pump(&stdout_r, "stdout", ATTACH_STDOUT);
		}
		if (fds[4].revents)
			pump(&stderr_r, "stderr", ATTACH_STDERR);
		if (fds[1].revents)
			handle_ctl(ctl);
		if (fds[2].revents) {
			int c = accept4(asock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (c >= 0 && n_clients == MAX_CLIENTS)
				close(c); /* refused at once, not left queued */
			else if (c >= 0)
				clients[n_clients++] = (struct client){.fd = c, .reading = 1};
		}
		if (fds[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si)
				;
			int st;
			pid_t w;
			while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
				if (w == cpid) {
					status = st;
					exited = 1;
				}
			}
		}
	}

	drain(&master, "stdout", ATTACH_STDOUT);
	drain(&stdout_r, "stdout", ATTACH_STDOUT);
	drain(&stderr_r, "stderr", ATTACH_STDERR);

	char code[16];
	snprintf(code, sizeof code, "%d", exit_code(status));
	if (oom_file[0]) {
		long k = oom_kills();
		if (k > 0 && k > oom_base && write_file_atomic(opt.persist_dir, "oom", "") < 0)
			say("writing oom marker: %s", strerror(errno));
	}
	if (write_file_atomic(opt.persist_dir, "exit", code) < 0)
		say("writing %s/exit: %s", opt.persist_dir, strerror(errno));
	if (write_file_atomic(opt.exit_dir, opt.cid, code) < 0)
		say("writing %s/%s: %s", opt.exit_dir, opt.cid, strerror(errno));
	for (int i = 0; i < n_clients; i++)
		close(clients[i].fd);
	return 0;
}
