// Package framework runs a real berthd for end-to-end tests: it builds the
// binaries once, starts daemons on temporary root, state and socket paths,
// drives them over the CRI socket and, after each test, removes every pod and
// checks that nothing leaked (mounts, conmon processes, runc state, cgroups).
package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/admin"
	"github.com/berth-project/berth/test/testimage"
)

// Options changes how StartDaemon runs berthd.
type Options struct {
	// Config is TOML written to a file passed with --config; empty passes none.
	Config string
	// Args are extra berthd arguments.
	Args []string
	// NoImage skips importing the busybox test image.
	NoImage bool
	// RootTmpfs, when set, mounts a tmpfs with these options (such as
	// "size=24m,nr_inodes=2k") on Root before berthd first starts, so that
	// a test can fill the image store's disk; it is unmounted at shutdown.
	RootTmpfs string
}

// Daemon is one running (or stopped) berthd with its own directories.
type Daemon struct {
	// Dir holds everything below; Root, StateDir and Socket are berthd's flags.
	Dir      string
	Root     string
	StateDir string
	Socket   string
	// LogDir is where pod log directories go (kubelet's /var/log/pods).
	LogDir string
	// LogPath is berthd's captured stderr (and stdout).
	LogPath string
	// CgroupParent is this daemon's top cgroup ("/berth-e2e-<rand>"); every
	// pod built by PodConfig sits below it.
	CgroupParent string
	// Bridge, Subnet and CNIConfDir are this daemon's test pod network (see
	// network.go): a bridge and /24 of its own, and an empty CNI conf dir.
	Bridge     string
	Subnet     string
	CNIConfDir string

	Runtime runtimeapi.RuntimeServiceClient
	Image   runtimeapi.ImageServiceClient
	Admin   *admin.Client

	// BusyboxID is the image id ImportImage returned for the busybox image.
	BusyboxID string

	opts       Options
	cmd        *exec.Cmd
	exited     chan struct{} // closed when the berthd process is gone
	exitErr    error         // its wait status, once exited is closed
	conn       *grpc.ClientConn
	baseMounts map[string]bool
	started    bool // berthd answered at least once
	mu         sync.Mutex
}

// StartDaemon starts a berthd of its own for t, with the busybox image
// imported. At the end of t it removes every pod, stops the daemon and fails
// t on any leak.
func StartDaemon(t testing.TB, opts Options) *Daemon {
	t.Helper()
	d, err := newDaemon(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, leak := range d.shutdown() {
			t.Error(leak)
		}
		if t.Failed() {
			d.dumpLog(t, 0)
		}
		d.removeDir(t)
	})
	if opts.RootTmpfs != "" {
		if err := d.mountRoot(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.start(); err != nil {
		t.Fatalf("%v\n%s", err, d.logTail(0))
	}
	if !opts.NoImage {
		d.importBusybox(t)
	}
	return d
}

var (
	sharedMu sync.Mutex
	shared   *Daemon
)

// Shared returns the package's shared berthd (started on first use, with the
// busybox image). At the end of t every pod is removed and the leak check
// runs; a failing test gets the daemon's log lines written during it.
func Shared(t testing.TB) *Daemon {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		if died, err := shared.exitedUnexpectedly(); died {
			t.Errorf("the shared berthd exited unexpectedly (%v) after the previous test; starting a new one\n%s", err, shared.logTail(shared.logSize()-16<<10))
		}
	}
	if shared == nil || !shared.Running() {
		if shared != nil {
			// It died: account for its leftovers, then start anew.
			for _, leak := range shared.Close() {
				t.Errorf("previous shared daemon: %s", leak)
			}
		}
		d, err := newDaemon(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.start(); err != nil {
			tail := d.logTail(0)
			leaks := d.Close()
			t.Fatalf("%v\n%s\nleaks: %v", err, tail, leaks)
		}
		shared = d // before the import, so that CloseShared stops it if that fails
		d.importBusybox(t)
	}
	d := shared
	offset := d.logSize()
	t.Cleanup(func() {
		// A test that killed the shared daemon leaves it to the next Shared
		// call or CloseShared.
		if d.Running() {
			for _, leak := range d.Reset() {
				t.Error(leak)
			}
		} else if died, err := d.exitedUnexpectedly(); died {
			t.Errorf("the shared berthd exited during the test (%v)", err)
			sharedMu.Lock()
			for _, leak := range d.shutdown() {
				t.Error(leak)
			}
			d.dumpLog(t, offset)
			_ = os.RemoveAll(d.Dir)
			if shared == d {
				shared = nil
			}
			sharedMu.Unlock()
			return
		}
		if t.Failed() {
			d.dumpLog(t, offset)
		}
	})
	return d
}

// CloseShared stops the shared daemon (if any) and returns its leaks.
func CloseShared() []string {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		return nil
	}
	leaks := shared.Close()
	shared = nil
	return leaks
}

func newDaemon(opts Options) (*Daemon, error) {
	if berthdBin == "" {
		return nil, errors.New("berthd binary not built: call framework.Main from TestMain")
	}
	// os.MkdirTemp, not t.TempDir: the socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Dir:          dir,
		Root:         filepath.Join(dir, "root"),
		StateDir:     filepath.Join(dir, "state"),
		Socket:       filepath.Join(dir, "berth.sock"),
		LogDir:       filepath.Join(dir, "pods"),
		LogPath:      filepath.Join(dir, "berthd.log"),
		CgroupParent: "/" + filepath.Base(dir) + "-" + randHex(3),
		CNIConfDir:   filepath.Join(dir, "cni", "net.d"),
		opts:         opts,
	}
	d.Bridge, d.Subnet = newTestNetwork()
	// The daemon's top dir stands in for /run and /var/lib: searchable
	// (os.MkdirTemp makes 0700), so that the remapped root of a pod in a
	// user namespace reaches <state_dir>-userns beside the state dir. The
	// state and root dirs in it stay 0700 (berthd makes them so).
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.LogDir, 0o755); err != nil {
		return nil, err
	}
	return d, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// args returns berthd's command line.
func (d *Daemon) args() ([]string, error) {
	args := []string{"--root", d.Root, "--state-dir", d.StateDir, "--socket", d.Socket, "--log-level", "debug"}
	// Always a config: it carries the daemon's test network.
	p, err := d.writeConfig()
	if err != nil {
		return nil, err
	}
	args = append(args, "--config", p)
	return append(args, d.opts.Args...), nil
}

// start runs berthd and waits until Version answers.
func (d *Daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil && !d.hasExited() {
		return errors.New("berthd already running")
	}
	d.cmd = nil
	args, err := d.args()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== e2e: starting %s %s\n", berthdBin, strings.Join(args, " "))
	cmd := exec.Command(berthdBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a ^C to `go test` does not reach it
	// before the cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start berthd: %w", err)
	}
	d.cmd = cmd
	exited := make(chan struct{})
	d.exited = exited
	go func() {
		err := cmd.Wait()
		d.exitErr = err
		close(exited)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			d.cmd = nil
			return fmt.Errorf("berthd exited before serving (%v); log %s", d.exitErr, d.LogPath)
		default:
		}
		if _, err := os.Stat(d.Socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("berthd did not create its socket %s within 30s; log %s", d.Socket, d.LogPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// kubelet's message limits (16 MiB both ways).
	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		return err
	}
	d.conn = conn
	d.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	d.Image = runtimeapi.NewImageServiceClient(conn)
	d.Admin = admin.NewClient(conn)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, lastErr = d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if lastErr == nil {
			break
		}
		select {
		case <-exited:
			d.cmd = nil
			return fmt.Errorf("berthd exited before answering Version (%v); log %s", d.exitErr, d.LogPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return fmt.Errorf("berthd did not answer Version within 30s: %v", lastErr)
	}
	d.started = true
	if d.baseMounts == nil {
		d.baseMounts = map[string]bool{}
		for _, m := range d.mounts() {
			d.baseMounts[m] = true
		}
	}
	return nil
}

// mountRoot mounts the tmpfs of Options.RootTmpfs on Root.
func (d *Daemon) mountRoot() error {
	if err := os.MkdirAll(d.Root, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("berth-e2e-root", d.Root, "tmpfs", 0, "mode=0700,"+d.opts.RootTmpfs); err != nil {
		return fmt.Errorf("mount tmpfs (%s) on %s: %w", d.opts.RootTmpfs, d.Root, err)
	}
	return nil
}

// Dial opens a CRI connection of its own to the daemon, closed at the end
// of t: its calls outlive Restart, which replaces the main connection.
func (d *Daemon) Dial(t testing.TB) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// Running reports whether the berthd process is alive.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd != nil && !d.hasExited()
}

func (d *Daemon) hasExited() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// exitedUnexpectedly reports (once) that berthd died without being asked to.
func (d *Daemon) exitedUnexpectedly() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || !d.hasExited() {
		return false, nil
	}
	d.cmd = nil
	return true, d.exitErr
}

// PID returns berthd's process id (0 when not running).
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.hasExited() {
		return 0
	}
	return d.cmd.Process.Pid
}

// signal sends sig to berthd and waits up to timeout for it to exit.
func (d *Daemon) signal(sig syscall.Signal, timeout time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return nil
	}
	if d.hasExited() {
		d.cmd = nil
		return fmt.Errorf("berthd had already exited (%v) before %v", d.exitErr, sig)
	}
	// SIGKILL first: closing the connection first would cancel the calls
	// in flight, and berthd would clean up after them before it died. A
	// kill must cut them as a crash does.
	if err := d.cmd.Process.Signal(sig); err != nil {
		return err
	}
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	select {
	case <-d.exited:
		d.cmd = nil
		if sig == syscall.SIGTERM && d.exitErr != nil {
			return fmt.Errorf("berthd exited with %v after SIGTERM (want 0)", d.exitErr)
		}
		return nil
	case <-time.After(timeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.cmd = nil
		return fmt.Errorf("berthd did not exit within %v of %v; killed", timeout, sig)
	}
}

// Kill9 kills berthd with SIGKILL and waits for it to be gone.
func (d *Daemon) Kill9(t testing.TB) {
	t.Helper()
	if err := d.signal(syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Stop sends SIGTERM and waits up to 15 s for a clean exit (status 0).
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.signal(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, d.logTail(0))
	}
}

// Restart starts berthd again on the same directories (stopping it with
// SIGTERM first if it runs) and reconnects the clients.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	if d.Running() {
		d.Stop(t)
	}
	if err := d.start(); err != nil {
		t.Fatalf("restart: %v\n%s", err, d.logTail(0))
	}
}

func (d *Daemon) importBusybox(t testing.TB) {
	t.Helper()
	ids := d.ImportImage(t, testimage.Busybox(t))
	if len(ids) != 1 {
		t.Fatalf("ImportImage(busybox) returned ids %q, want one", ids)
	}
	d.BusyboxID = ids[0]
}

// ImportImage imports the archive at path through the admin service.
func (d *Daemon) ImportImage(t testing.TB, path string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids, err := d.Admin.ImportImage(ctx, path)
	if err != nil {
		t.Fatalf("ImportImage(%s): %v", path, err)
	}
	return ids
}

// Reset removes every pod (stop, then remove) and returns what leaked,
// checked while berthd keeps running. Cgroup parents that only held removed
// pods are deleted, as kubelet does for its pod cgroups.
func (d *Daemon) Reset() []string {
	var leaks []string
	leaks = append(leaks, d.removeAllPods()...)
	leaks = append(leaks, d.checkLeaks(true)...)
	return leaks
}

// Close shuts the daemon down (see shutdown) and removes its directories. It
// returns the leaks.
func (d *Daemon) Close() []string {
	leaks := d.shutdown()
	if err := os.RemoveAll(d.Dir); err != nil {
		leaks = append(leaks, fmt.Sprintf("remove %s: %v", d.Dir, err))
	}
	return leaks
}

func (d *Daemon) removeDir(t testing.TB) {
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("remove %s: %v", d.Dir, err)
	}
}

// shutdown removes every pod, stops berthd with SIGTERM, checks for leaks and
// cleans up whatever leaked, so that the machine stays usable.
func (d *Daemon) shutdown() []string {
	var leaks []string
	if !d.Running() && d.started {
		// Killed by the test: bring it back so that it can remove its pods.
		if err := d.start(); err != nil {
			leaks = append(leaks, fmt.Sprintf("restart for cleanup failed: %v", err))
		}
	}
	if d.Running() {
		leaks = append(leaks, d.removeAllPods()...)
		if err := d.signal(syscall.SIGTERM, 15*time.Second); err != nil {
			leaks = append(leaks, err.Error())
		}
	}
	if d.opts.RootTmpfs != "" {
		// The test's own mount, not a leak: the checks below see the rest.
		_ = syscall.Unmount(d.Root, syscall.MNT_DETACH)
	}
	leaks = append(leaks, d.checkLeaks(false)...)
	d.forceCleanup()
	d.removeNetwork()
	return leaks
}

// removeAllPods stops and removes every listed pod. Errors are leaks.
func (d *Daemon) removeAllPods() []string {
	var leaks []string
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return []string{fmt.Sprintf("cleanup: ListPodSandbox: %v", err)}
	}
	for _, p := range pods.Items {
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			leaks = append(leaks, fmt.Sprintf("cleanup: StopPodSandbox %s: %v", p.Id, err))
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			leaks = append(leaks, fmt.Sprintf("cleanup: RemovePodSandbox %s: %v", p.Id, err))
		}
	}
	// Containers without a pod should not exist; remove them if they do.
	ctrs, err := d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return append(leaks, fmt.Sprintf("cleanup: ListContainers: %v", err))
	}
	for _, c := range ctrs.Containers {
		leaks = append(leaks, fmt.Sprintf("container %s (%s) still listed after its pod %s was removed", c.Id, c.GetMetadata().GetName(), c.PodSandboxId))
		_, _ = d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id})
		_, _ = d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
	}
	pods, err = d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err == nil && len(pods.Items) > 0 {
		leaks = append(leaks, fmt.Sprintf("%d pods still listed after RemovePodSandbox", len(pods.Items)))
	}
	return leaks
}

// Ctx returns a context for one RPC, cancelled at the end of t.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// logSize is the current length of berthd's log file.
func (d *Daemon) logSize() int64 {
	fi, err := os.Stat(d.LogPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns berthd's log from offset, at most the last 64 KiB.
func (d *Daemon) logTail(offset int64) string {
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(no berthd log: %v)", err)
	}
	if offset < 0 {
		offset = 0
	}
	if offset < int64(len(data)) {
		data = data[offset:]
	} else {
		data = nil
	}
	const max = 64 << 10
	if len(data) > max {
		data = append([]byte("...\n"), data[len(data)-max:]...)
	}
	return fmt.Sprintf("--- berthd log %s ---\n%s--- end of berthd log ---", d.LogPath, data)
}

func (d *Daemon) dumpLog(t testing.TB, offset int64) {
	t.Log(d.logTail(offset))
}
