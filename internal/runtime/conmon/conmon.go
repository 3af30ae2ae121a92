// Package conmon runs conmon, the per-container monitor process CRI-O and
// Podman use. conmon runs the OCI runtime's create, holds the container's
// stdio, writes the CRI log file, serves the attach socket and records the
// exit code in a file. It daemonizes, so containers keep running and exits are
// still recorded while berthd is down or restarting.
//
// Files, as conmon lays them out:
//
//	<Dir>/conmon.pid      conmon's pid (written by conmon's first process)
//	<Dir>/container.pid   the container's init pid (written by the runtime)
//	<Dir>/runtime.log     the runtime's JSON log of the create
//	<Dir>/exit, <Dir>/oom persist files: exit code; oom marker
//	<ExitDir>/<id>        exit code, for a daemon watching all exits
//	<BundleDir>/ctl       control fifo (log reopen, terminal resize)
//	<BundleDir>/attach    attach socket (SOCK_SEQPACKET)
package conmon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
)

// File names inside Config.Dir and Config.BundleDir.
const (
	conmonPidFile    = "conmon.pid"
	containerPidFile = "container.pid"
	runtimeLogFile   = "runtime.log"
	persistExitFile  = "exit"
	oomFile          = "oom"
	ctlFifo          = "ctl"
	winszFifo        = "winsz"
	attachSocket     = "attach"
)

// createTimeout bounds a create when the caller's context has no deadline,
// so a hung runtime (a stuck hook, say) cannot hold a CRI call forever.
const createTimeout = 4 * time.Minute

// Runtime is the OCI runtime conmon runs for a container's create.
type Runtime interface {
	// Name names the runtime in error messages (the handler's name).
	Name() string
	// Command is the binary conmon runs as its runtime and the global
	// arguments that go before every subcommand.
	Command() (path string, globalArgs []string)
	// Delete removes the runtime's state of a container, with force a
	// running one too; an absent container is not an error.
	Delete(ctx context.Context, id string, force bool) error
	// Message picks the runtime's error message out of its log output.
	Message(log []byte) string
}

// Config describes one container for conmon.
type Config struct {
	ConmonPath string
	Runtime    Runtime
	ID         string
	BundleDir  string // holds config.json; conmon also puts its ctl fifo and attach socket here
	Dir        string // per-container dir for conmon: pidfiles, runtime log, persist files (exit, oom)
	ExitDir    string // shared dir where conmon writes <id> with the exit code when the container exits
	LogPath    string // CRI log file (k8s-file format), written by conmon; its directory must exist; empty: no log
	Terminal   bool
	Stdin      bool
	StdinOnce  bool // close the container's stdin when the first attached client leaves
	// Spares, when set, may provide a berth-monitor started ahead of the
	// create (see Spares); nil: the monitor is exec'd for the create.
	Spares *Spares
}

// Process is a created container: its init pid and its conmon's pid.
type Process struct {
	Pid       int
	ConmonPid int
}

// syncMessage is what conmon writes on _OCI_SYNCPIPE once the runtime's
// create returned: the container pid, or -1 and the runtime's stderr.
// With --api-version 1 the number is "data"; older conmons say "pid".
type syncMessage struct {
	Data    *int   `json:"data"`
	Pid     *int   `json:"pid"`
	Message string `json:"message"`
}

func (c *Config) validate() error {
	switch {
	case c.ConmonPath == "":
		return errdefs.Invalid("monitor: conmon path is empty")
	case c.Runtime == nil || runtimePath(c.Runtime) == "":
		return errdefs.Invalid("monitor: no OCI runtime given")
	case c.ID == "" || strings.ContainsAny(c.ID, "/.") || c.ID != filepath.Base(c.ID):
		return errdefs.Invalid(fmt.Sprintf("monitor: container id %q is empty or has '/' or '.'", c.ID))
	case !filepath.IsAbs(c.BundleDir), !filepath.IsAbs(c.Dir), !filepath.IsAbs(c.ExitDir):
		return errdefs.Invalid("monitor: bundle, state and exit paths must be absolute")
	case c.LogPath != "" && !filepath.IsAbs(c.LogPath):
		return errdefs.Invalid(fmt.Sprintf("monitor: log path %q must be absolute", c.LogPath))
	case strings.ContainsRune(c.BundleDir+c.Dir+c.ExitDir+c.LogPath, 0):
		// A spare takes its command line NUL-separated: a NUL inside one
		// would add arguments (exec refuses them anyway).
		return errdefs.Invalid("monitor: a path contains a NUL byte")
	}
	return nil
}

// logSpec is conmon's -l value. CRI clients (critest, crictl) may leave
// log_path empty; conmon's "none" driver then writes no log, while attach
// still works through the attach socket.
func (c *Config) logSpec() string {
	if c.LogPath == "" {
		return "none:"
	}
	return "k8s-file:" + c.LogPath
}

func (c *Config) args() []string {
	rtPath, rtGlobal := c.Runtime.Command()
	args := []string{
		"--api-version", "1",
		"-c", c.ID,
		"-u", c.ID,
		"-n", c.ID,
		"-r", rtPath,
		"-b", c.BundleDir,
		"-p", filepath.Join(c.Dir, containerPidFile),
		"-P", filepath.Join(c.Dir, conmonPidFile),
		"-l", c.logSpec(),
		"--exit-dir", c.ExitDir,
		"--persist-dir", c.Dir,
		// The attach socket goes into the bundle dir under its full path
		// (no symlink dir under --socket-dir-path to clean up).
		"--full-attach",
		"--socket-dir-path", c.Dir,
		"--syslog",
		"--log-level", "warn",
	}
	rtArgs := append(append([]string(nil), rtGlobal...), "--log", filepath.Join(c.Dir, runtimeLogFile))
	for _, a := range rtArgs {
		args = append(args, "--runtime-arg", a)
	}
	// As CRI-O: with a terminal, stdin goes through the console; -i would
	// make conmon close the console when an attach client leaves.
	if c.Terminal {
		args = append(args, "-t")
	} else if c.Stdin {
		args = append(args, "-i")
		if !c.StdinOnce {
			args = append(args, "--leave-stdin-open")
		}
	}
	return args
}

// Create starts conmon, which runs the runtime's create. It returns once the
// container is created (not started). On failure the error carries the
// runtime's message, and nothing is left behind: no runtime state, no conmon.
func Create(ctx context.Context, cfg Config) (_ *Process, retErr error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("monitor: creating container %s: %w", cfg.ID, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, createTimeout)
		defer cancel()
	}
	for _, d := range []string{cfg.Dir, cfg.ExitDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("monitor: container %s: %w", cfg.ID, err)
		}
	}
	// Stale files of an earlier attempt would be read as this one's.
	removeFiles(filepath.Join(cfg.ExitDir, cfg.ID), filepath.Join(cfg.Dir, persistExitFile),
		filepath.Join(cfg.Dir, oomFile), filepath.Join(cfg.Dir, conmonPidFile),
		filepath.Join(cfg.Dir, containerPidFile), filepath.Join(cfg.Dir, runtimeLogFile))

	conmonPid := 0
	defer func() {
		if retErr != nil {
			if conmonPid <= 0 {
				// A spare writes its pid file once it has its job.
				conmonPid, _ = readPid(filepath.Join(cfg.Dir, conmonPidFile))
			}
			cleanupFailed(cfg, conmonPid)
		}
	}()
	var syncR *os.File
	args := cfg.args()
	if sp := cfg.Spares.take(args); sp != nil {
		if err := sp.give(args); err != nil {
			slog.Warn("handing a container to a spare monitor; starting one", "id", cfg.ID, "err", err)
			sp.syncR.Close()
		} else {
			syncR = sp.syncR
			// Known before the spare writes its pid file: a create
			// abandoned in between still ends this monitor.
			defer func() {
				if retErr != nil && conmonPid <= 0 {
					sp.kill()
				}
			}()
		}
	}
	if syncR == nil {
		var err error
		if syncR, conmonPid, err = startMonitor(cfg, args); err != nil {
			return nil, err
		}
	}
	defer syncR.Close()

	msg, err := readSync(ctx, syncR)
	if conmonPid <= 0 {
		conmonPid, _ = readPid(filepath.Join(cfg.Dir, conmonPidFile))
	}
	if err != nil {
		if ctx.Err() != nil {
			kind := error(errdefs.ErrUnavailable)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				kind = errdefs.ErrDeadlineExceeded
			}
			return nil, fmt.Errorf("monitor: creating container %s: %v: %w", cfg.ID, ctx.Err(), kind)
		}
		return nil, fmt.Errorf("%s create %s: conmon exited without reporting: %v%s", cfg.Runtime.Name(), cfg.ID, err, runtimeLogSuffix(cfg.Runtime, cfg.Dir))
	}
	pid := msg.pid()
	if pid <= 0 {
		text := cfg.Runtime.Message(readHead(filepath.Join(cfg.Dir, runtimeLogFile)))
		if text == "" {
			text = cfg.Runtime.Message([]byte(msg.Message))
		}
		if text == "" {
			text = "runtime failed without a message"
		}
		return nil, fmt.Errorf("%s create %s: %s", cfg.Runtime.Name(), cfg.ID, text)
	}
	if conmonPid <= 0 {
		return nil, fmt.Errorf("monitor: container %s: conmon wrote no pid file", cfg.ID)
	}
	slog.Debug("container created", "id", cfg.ID, "pid", pid, "conmon_pid", conmonPid)
	return &Process{Pid: pid, ConmonPid: conmonPid}, nil
}

// startMonitor execs the monitor for cfg and waits for its first process,
// which exits once the monitor runs in the background, having written its
// pid file. It returns the read end of the monitor's sync pipe and its pid.
func startMonitor(cfg Config, args []string) (_ *os.File, conmonPid int, retErr error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("monitor: container %s: sync pipe: %w", cfg.ID, err)
	}
	defer func() {
		if retErr != nil {
			syncR.Close()
		}
	}()
	cmd := exec.Command(cfg.ConmonPath, args...)
	cmd.Dir = cfg.Dir // conmon also drops an "oom" marker in its working dir
	cmd.Env = monitorEnv()
	cmd.ExtraFiles = []*os.File{syncW}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 8192}
	// Our own process group: a signal to berthd's group (a test's kill, a
	// terminal's ^C) must not reach conmon before it setsid()s itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		syncW.Close()
		return nil, 0, fmt.Errorf("monitor: starting conmon for container %s: %w", cfg.ID, err)
	}
	syncW.Close()

	// conmon forks its daemon and the first process exits at once, after
	// writing the daemon's pid: reap it so berthd never holds a zombie and
	// never waits on the long-lived monitor.
	waitErr := cmd.Wait()
	conmonPid, _ = readPid(filepath.Join(cfg.Dir, conmonPidFile))
	if waitErr != nil {
		return nil, conmonPid, fmt.Errorf("monitor: conmon for container %s failed: %v: %s", cfg.ID, waitErr, strings.TrimSpace(stderr.String()))
	}
	return syncR, conmonPid, nil
}

// monitorEnv is a monitor's environment: its sync pipe (fd 3) and PATH.
func monitorEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return []string{"_OCI_SYNCPIPE=3", "PATH=" + path}
}

// readSync reads conmon's first sync message, giving up when ctx ends.
func readSync(ctx context.Context, r *os.File) (*syncMessage, error) {
	type result struct {
		m   *syncMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := decodeSync(r)
		ch <- result{m, err}
	}()
	select {
	case res := <-ch:
		return res.m, res.err
	case <-ctx.Done():
		r.Close() // unblocks the reader
		<-ch
		return nil, ctx.Err()
	}
}

// decodeSync decodes one sync message, reading at most 64 KiB.
func decodeSync(r io.Reader) (*syncMessage, error) {
	var m syncMessage
	err := json.NewDecoder(io.LimitReader(r, 64<<10)).Decode(&m)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// pid is the container pid the message reports, or -1 when it reports
// none (the runtime failed).
func (m *syncMessage) pid() int {
	switch {
	case m.Data != nil:
		return *m.Data
	case m.Pid != nil:
		return *m.Pid
	}
	return -1
}

// cleanupFailed undoes a failed create: conmon gone, runtime state gone,
// files removed. It runs on its own context: the caller's may be done.
func cleanupFailed(cfg Config, conmonPid int) {
	if conmonPid > 0 && isConmon(conmonPid, filepath.Join(cfg.Dir, conmonPidFile)) {
		// conmon's runtime child dies with it (PDEATHSIG).
		_ = syscall.Kill(conmonPid, syscall.SIGKILL)
		if !host.WaitGone(conmonPid, 2*time.Second) {
			slog.Warn("conmon did not exit after SIGKILL", "id", cfg.ID, "conmon_pid", conmonPid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cfg.Runtime.Delete(ctx, cfg.ID, true); err != nil {
		slog.Warn("removing runtime state of failed create", "id", cfg.ID, "err", err)
	}
	removeOrphanCgroup(cfg.ID, cfg.BundleDir)
	removeFiles(filepath.Join(cfg.ExitDir, cfg.ID), filepath.Join(cfg.Dir, persistExitFile),
		filepath.Join(cfg.Dir, oomFile), filepath.Join(cfg.Dir, conmonPidFile),
		filepath.Join(cfg.Dir, containerPidFile), filepath.Join(cfg.BundleDir, ctlFifo),
		filepath.Join(cfg.BundleDir, winszFifo), filepath.Join(cfg.BundleDir, attachSocket),
		cfg.LogPath)
}

// ConmonAlive reports the conmon of the container whose Dir is dir, from its
// pid file, checking the process is still that conmon (its command line
// names the pid file), not a reused pid.
func ConmonAlive(dir string) (pid int, alive bool) {
	pidFile := filepath.Join(dir, conmonPidFile)
	pid, err := readPid(pidFile)
	if err != nil {
		return 0, false
	}
	return pid, isConmon(pid, pidFile)
}

func isConmon(pid int, pidFile string) bool {
	args, err := host.Process(pid).Cmdline()
	// A zombie has an empty cmdline, and a reused pid another one.
	return err == nil && len(args) > 1 && slices.Contains(args[1:], pidFile)
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds %q", path, b)
	}
	return pid, nil
}

// readHead reads up to 64 KiB of a file; missing files read as empty.
func readHead(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return b
}

func runtimeLogSuffix(rt Runtime, dir string) string {
	if msg := rt.Message(readHead(filepath.Join(dir, runtimeLogFile))); msg != "" {
		return ": " + msg
	}
	return ""
}

func runtimePath(rt Runtime) string {
	path, _ := rt.Command()
	return path
}

func removeFiles(paths ...string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}

// limitedBuffer keeps the first max bytes written and drops the rest, so a
// chatty failure cannot grow memory.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

// ContainerPid reads the container pid the runtime wrote for the container
// whose Dir is dir.
func ContainerPid(dir string) (int, error) {
	return readPid(filepath.Join(dir, containerPidFile))
}
