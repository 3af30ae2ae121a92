package conmon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
)

// env is the shared setup of one test: a runc with its own root and one
// exit dir.
type env struct {
	t       testing.TB
	conmon  string
	rt      *testRunc
	exitDir string
	logDir  string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	conmon := testMonitor
	if conmon == "" {
		t.Skip("no monitor: berth-monitor not built (no C compiler) and conmon not installed")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox not installed")
	}
	tmp := t.TempDir()
	if err := os.Mkdir(filepath.Join(tmp, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &env{
		t:       t,
		conmon:  conmon,
		rt:      &testRunc{path: runc, root: filepath.Join(tmp, "runc")},
		exitDir: filepath.Join(tmp, "exits"),
		logDir:  filepath.Join(tmp, "logs"),
	}
}

// config builds a busybox bundle running sh -c script and returns the
// monitor config for it, registering cleanup of the container and conmon.
func (e *env) config(name, script string) Config {
	t := e.t
	t.Helper()
	id := fmt.Sprintf("berth-mon-%s-%d", name, os.Getpid())
	bundle := t.TempDir()
	bin := filepath.Join(bundle, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(bin, "sh")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(e.rt.path, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/bin/sh", "-c", script}
	spec.Process.Env = append(spec.Process.Env, "PATH=/bin")
	spec.Linux.CgroupsPath = testCgroupParent + "/" + id
	if data, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ConmonPath: e.conmon,
		Runtime:    e.rt,
		ID:         id,
		BundleDir:  bundle,
		Dir:        filepath.Join(t.TempDir(), "state"),
		ExitDir:    e.exitDir,
		LogPath:    filepath.Join(e.logDir, id+".log"),
	}
	t.Cleanup(func() {
		if err := e.rt.Delete(context.Background(), id, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if pid, alive := ConmonAlive(cfg.Dir); alive {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			host.WaitGone(pid, 2*time.Second)
		}
	})
	return cfg
}

func (e *env) setScript(cfg Config, args ...string) {
	e.t.Helper()
	p := filepath.Join(cfg.BundleDir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		e.t.Fatal(err)
	}
	spec.Process.Args = args
	data, _ = json.Marshal(&spec)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func waitExit(t testing.TB, cfg Config) Exit {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ex, ok, err := ReadExit(cfg.ExitDir, cfg.Dir, cfg.ID)
		if err != nil {
			t.Fatalf("ReadExit: %v", err)
		}
		if ok {
			return ex
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not exit", cfg.ID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logLine is one parsed CRI log line.
type logLine struct {
	ts          time.Time
	stream, tag string
	content     string
}

func readLog(t testing.TB, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("log line %q is not <time> <stream> <tag> <content>", sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("log line %q: time: %v", sc.Text(), err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" || parts[2] != "F" && parts[2] != "P" {
			t.Fatalf("log line %q: bad stream or tag", sc.Text())
		}
		lines = append(lines, logLine{ts, parts[1], parts[2], parts[3]})
	}
	return lines
}

func procStat(t testing.TB, pid int) (ppid, pgid, sid int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("conmon %d: %v", pid, err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	sid, _ = strconv.Atoi(f[3])
	return ppid, pgid, sid
}

func TestCreateStartExitAndLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("exit", "echo out; echo err >&2; exit 3")

	start := time.Now()
	p, err := Create(ctx, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("Create took %v: %+v", time.Since(start), p)
	if p.Pid <= 0 || p.ConmonPid <= 0 {
		t.Fatalf("Process = %+v", p)
	}
	st, err := e.rt.State(ctx, cfg.ID)
	if err != nil || st.Status != "created" || st.Pid != p.Pid {
		t.Fatalf("State = %+v, %v; want created with pid %d", st, err, p.Pid)
	}
	if _, ok, _ := ReadExit(cfg.ExitDir, cfg.Dir, cfg.ID); ok {
		t.Fatal("exit recorded before start")
	}

	// conmon is a daemon: not our child, not in our process group or session.
	ppid, pgid, sid := procStat(t, p.ConmonPid)
	if ppid == os.Getpid() || pgid == syscall.Getpgrp() || sid != p.ConmonPid {
		t.Fatalf("conmon ppid %d pgid %d sid %d; test pid %d pgrp %d", ppid, pgid, sid, os.Getpid(), syscall.Getpgrp())
	}
	if pid, alive := ConmonAlive(cfg.Dir); !alive || pid != p.ConmonPid {
		t.Fatalf("ConmonAlive = %d, %v; want %d, true", pid, alive, p.ConmonPid)
	}

	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ex := waitExit(t, cfg)
	if ex.Code != 3 || ex.OOM || ex.At.IsZero() {
		t.Fatalf("Exit = %+v, want code 3", ex)
	}
	if !host.WaitGone(p.ConmonPid, 5*time.Second) {
		t.Fatal("conmon still running after the container exited")
	}
	if _, alive := ConmonAlive(cfg.Dir); alive {
		t.Fatal("ConmonAlive after exit")
	}

	raw, _ := os.ReadFile(cfg.LogPath)
	t.Logf("log file:\n%s", raw)
	lines := readLog(t, cfg.LogPath)
	got := []string{}
	for _, l := range lines {
		got = append(got, l.stream+" "+l.tag+" "+l.content)
		if l.ts.Before(start.Add(-time.Second)) || l.ts.After(time.Now()) {
			t.Errorf("log time %v out of range", l.ts)
		}
	}
	sort.Strings(got)
	if want := []string{"stderr F err", "stdout F out"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("log lines = %q, want %q", got, want)
	}

	list, err := e.rt.List(ctx)
	if err != nil || len(list) != 1 || list[0].Status != "stopped" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := e.rt.Delete(ctx, cfg.ID, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.rt.State(ctx, cfg.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("State after Delete: %v", err)
	}
	if err := RemoveExit(cfg.ExitDir, cfg.ID); err != nil {
		t.Fatal(err)
	}
	// The persist copy still answers.
	if ex2, ok, err := ReadExit(cfg.ExitDir, cfg.Dir, cfg.ID); err != nil || !ok || ex2.Code != 3 {
		t.Fatalf("ReadExit from persist dir = %+v, %v, %v", ex2, ok, err)
	}
}

func TestPartialLine(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("partial", "printf 'no newline'; sleep 0.2; echo ' end'")
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitExit(t, cfg)
	lines := readLog(t, cfg.LogPath)
	var joined strings.Builder
	for i, l := range lines {
		if l.tag == "P" && i == len(lines)-1 {
			t.Fatalf("last line is partial: %+v", lines)
		}
		joined.WriteString(l.content)
		if l.tag == "F" {
			joined.WriteString("\n")
		}
	}
	if joined.String() != "no newline end\n" || lines[0].tag != "P" {
		t.Fatalf("log = %+v", lines)
	}
}

func TestKillSeenByWatch(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	seen := map[string]int{}
	notify := make(chan string, 16)
	watchDone := make(chan error, 1)
	if err := os.MkdirAll(e.exitDir, 0o700); err != nil {
		t.Fatal(err)
	}
	go func() {
		watchDone <- Watch(ctx, e.exitDir, func(id string) {
			mu.Lock()
			seen[id]++
			mu.Unlock()
			notify <- id
		})
	}()

	term := e.config("term", "trap 'exit 42' TERM; while true; do sleep 0.05; done")
	kill := e.config("kill", "sleep 1000")
	for _, cfg := range []Config{term, kill} {
		if _, err := Create(ctx, cfg); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if err := e.rt.Start(ctx, cfg.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	// Let the shell install its trap before signalling it.
	time.Sleep(100 * time.Millisecond)
	for _, k := range []struct {
		cfg  Config
		sig  syscall.Signal
		code int
	}{{term, syscall.SIGTERM, 42}, {kill, syscall.SIGKILL, 137}} {
		if err := e.rt.Kill(ctx, k.cfg.ID, k.sig, false); err != nil {
			t.Fatalf("Kill %v: %v", k.sig, err)
		}
		select {
		case id := <-notify:
			if id != k.cfg.ID {
				t.Fatalf("Watch reported %q, want %q", id, k.cfg.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Watch did not report the exit of %s", k.cfg.ID)
		}
		ex, ok, err := ReadExit(k.cfg.ExitDir, k.cfg.Dir, k.cfg.ID)
		if err != nil || !ok || ex.Code != k.code {
			t.Fatalf("ReadExit after %v = %+v, %v, %v; want code %d", k.sig, ex, ok, err, k.code)
		}
	}
	cancel()
	if err := <-watchDone; err != nil {
		t.Fatalf("Watch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("Watch reported %s %d times", id, n)
		}
	}

	// A new Watch reports exits already on disk.
	ctx2, cancel2 := context.WithCancel(context.Background())
	var again []string
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel2()
	}()
	if err := Watch(ctx2, e.exitDir, func(id string) { again = append(again, id) }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(again)
	if want := []string{kill.ID, term.ID}; strings.Join(again, ",") != strings.Join(want, ",") {
		t.Fatalf("initial scan reported %v, want %v", again, want)
	}
}

func TestReopenLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("reopen", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.02; done")
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitLines := func(path string, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(readLog(t, path)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: fewer than %d lines", path, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitLines(cfg.LogPath, 3)
	rotated := cfg.LogPath + ".1"
	if err := os.Rename(cfg.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := ReopenLog(ctx, cfg.BundleDir, cfg.LogPath); err != nil {
		t.Fatalf("ReopenLog: %v", err)
	}
	waitLines(cfg.LogPath, 3)
	old, cur := readLog(t, rotated), readLog(t, cfg.LogPath)
	last, _ := strconv.Atoi(strings.TrimPrefix(old[len(old)-1].content, "line"))
	first, _ := strconv.Atoi(strings.TrimPrefix(cur[0].content, "line"))
	if first != last+1 {
		t.Fatalf("rotated file ends at line%d, new file starts at line%d", last, first)
	}
	if err := Resize(cfg.BundleDir, 80, 24); err != nil {
		t.Fatalf("Resize: %v", err)
	}

	if err := e.rt.Kill(ctx, cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cfg)
	pid, _ := ConmonAlive(cfg.Dir)
	host.WaitGone(pid, 5*time.Second)
	if err := ReopenLog(ctx, cfg.BundleDir, cfg.LogPath); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("ReopenLog with conmon gone: err = %v", err)
	}
}

// conmonProcs lists live processes whose command line mentions dir.
func conmonProcs(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("fail", "true")
	e.setScript(cfg, "/bin/no-such-binary")

	_, err := Create(ctx, cfg)
	if err == nil {
		t.Fatal("Create of a missing executable succeeded")
	}
	t.Logf("Create: %v", err)
	if !strings.HasPrefix(err.Error(), "runc create "+cfg.ID+": ") || !strings.Contains(err.Error(), "no-such-binary") {
		t.Fatalf("error %q lacks the runtime's message", err)
	}
	if _, err := e.rt.State(ctx, cfg.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("runtime state left: %v", err)
	}
	if pids := conmonProcs(cfg.Dir); len(pids) != 0 {
		t.Fatalf("processes left: %v", pids)
	}
	if _, ok, _ := ReadExit(cfg.ExitDir, cfg.Dir, cfg.ID); ok {
		t.Fatal("exit file left")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory" + testCgroupParent + "/" + cfg.ID); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cgroup left: %v", err)
	}

	// A bad bundle fails the same way, before the container process exists.
	cfg2 := e.config("badbundle", "true")
	cfg2.BundleDir = filepath.Join(t.TempDir(), "missing")
	if err := os.MkdirAll(cfg2.BundleDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, cfg2); err == nil || !strings.HasPrefix(err.Error(), "runc create "+cfg2.ID+": ") {
		t.Fatalf("Create with no config.json: err = %v", err)
	} else {
		t.Logf("Create with no config.json: %v", err)
	}
	if pids := conmonProcs(cfg2.Dir); len(pids) != 0 {
		t.Fatalf("processes left: %v", pids)
	}

	// A create that outlives its context (a hook that hangs) is undone.
	cfg3 := e.config("timeout", "true")
	holdCreate(t, cfg3.BundleDir, "2")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := Create(cctx, cfg3); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Fatalf("Create past its deadline: err = %v", err)
	}
	if pids := conmonProcs(cfg3.Dir); len(pids) != 0 {
		t.Fatalf("processes left after timeout: %v", pids)
	}
	if _, err := e.rt.State(ctx, cfg3.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("runtime state left after timeout: %v", err)
	}
	for _, dir := range cgroups.Dirs(testCgroupParent + "/" + cfg3.ID) {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cgroup left after timeout: %s: %v", dir, err)
		}
	}

	// A context already done starts nothing.
	cfg4 := e.config("cancel", "true")
	dctx, dcancel := context.WithCancel(ctx)
	dcancel()
	if _, err := Create(dctx, cfg4); err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
	if _, err := os.Stat(filepath.Join(cfg4.Dir, conmonPidFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("conmon ran with a cancelled context: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := Config{ConmonPath: "/usr/bin/conmon", Runtime: &testRunc{path: "/usr/sbin/runc", root: "/r"}, ID: "abc",
		BundleDir: "/b", Dir: "/d", ExitDir: "/e", LogPath: "/l/x.log"}
	if err := base.validate(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.ID = "" },
		func(c *Config) { c.ID = "../x" },
		func(c *Config) { c.ID = "a.b" },
		func(c *Config) { c.LogPath = "rel.log" },
		func(c *Config) { c.Runtime = nil },
		func(c *Config) { c.LogPath = "/l/0.log\x00-r\x00/x" },
		func(c *Config) { c.BundleDir = "/b\x00-t" },
	} {
		c := base
		mod(&c)
		if err := c.validate(); !errdefs.IsInvalid(err) {
			t.Errorf("validate(%+v) = %v, want InvalidArgument", c, err)
		}
	}
	args := strings.Join(base.args(), " ")
	for _, want := range []string{"--api-version 1", "-l k8s-file:/l/x.log", "--exit-dir /e", "--persist-dir /d",
		"--runtime-arg --root", "--runtime-arg --log --runtime-arg /d/runtime.log", "-P /d/conmon.pid"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	nolog := base
	nolog.LogPath = ""
	if err := nolog.validate(); err != nil || !strings.Contains(strings.Join(nolog.args(), " "), "-l none:") {
		t.Errorf("no log path: validate %v, args %q; want valid with -l none:", err, nolog.args())
	}
	c := base
	c.Stdin = true
	if a := strings.Join(c.args(), " "); !strings.HasSuffix(a, "-i --leave-stdin-open") {
		t.Errorf("stdin args: %q", a)
	}
	c.StdinOnce = true
	if a := strings.Join(c.args(), " "); !strings.HasSuffix(a, " -i") {
		t.Errorf("stdin-once args: %q", a)
	}
	c.Terminal = true
	if a := strings.Join(c.args(), " "); !strings.HasSuffix(a, " -t") {
		t.Errorf("terminal args: %q", a)
	}
}

// BenchmarkCreateStart measures conmon Create + runtime Start of a trivial
// container (median), and conmon's PSS: alone (shared libraries charged to
// one process) and with all b.N conmons running (shared pages split).
func BenchmarkCreateStart(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	var took []time.Duration
	var conmons []int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := e.config(fmt.Sprintf("bench%d", i), "sleep 1000")
		b.StartTimer()
		t0 := time.Now()
		p, err := Create(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.rt.Start(ctx, cfg.ID); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		if i == 0 {
			b.ReportMetric(float64(pss(p.ConmonPid)), "PSS-alone-KiB")
		}
		conmons = append(conmons, p.ConmonPid)
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	var kib []int
	for _, pid := range conmons {
		kib = append(kib, pss(pid))
	}
	sort.Ints(kib)
	b.ReportMetric(float64(kib[len(kib)/2]), "PSS-each-of-N-KiB")
}

// pss reads a process's proportional set size in KiB.
func pss(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// dialAttach connects to conmon's attach socket, whose path may be longer
// than a socket address allows, through /proc/self/fd.
func dialAttach(t *testing.T, bundleDir string) *net.UnixConn {
	t.Helper()
	dir, err := os.Open(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	addr := &net.UnixAddr{Net: "unixpacket", Name: fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(AttachSocketPath(bundleDir)))}
	conn, err := net.DialUnix("unixpacket", nil, addr)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	return conn
}

func TestStdinThroughAttach(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("stdin", "read x; echo got $x; read y; echo also $y")
	cfg.Stdin, cfg.StdinOnce = true, true
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	conn := dialAttach(t, cfg.BundleDir)
	defer conn.Close()
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	// Output comes back with a leading byte naming the stream.
	buf := make([]byte, 8192)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || n < 2 || string(buf[1:n]) != "got hello\n" {
		t.Fatalf("attach read = %q, %v", buf[:n], err)
	}
	// StdinOnce: leaving closes the container's stdin, so the second read
	// sees EOF.
	conn.Close()
	if ex := waitExit(t, cfg); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	var got []string
	for _, l := range readLog(t, cfg.LogPath) {
		got = append(got, l.content)
	}
	if strings.Join(got, "|") != "got hello|also" {
		t.Fatalf("log = %q", got)
	}
}

// CRI clients may leave log_path empty: conmon then writes no log, the exit
// is still recorded and attach still carries the output.
func TestNoLogPath(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("nolog", "read x; echo got $x; exit 4")
	cfg.LogPath = ""
	cfg.Stdin, cfg.StdinOnce = true, true
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create without a log path: %v", err)
	}
	conn := dialAttach(t, cfg.BundleDir)
	defer conn.Close()
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := conn.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || n < 2 || string(buf[1:n]) != "got hi\n" {
		t.Fatalf("attach read = %q, %v", buf[:n], err)
	}
	if ex := waitExit(t, cfg); ex.Code != 4 {
		t.Fatalf("exit = %+v, want code 4", ex)
	}
	if ents, _ := os.ReadDir(e.logDir); len(ents) != 0 {
		t.Fatalf("log dir has %d entries, want none", len(ents))
	}
}

func TestTerminal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("tty", "if [ -t 1 ]; then echo tty; else echo notty; fi")
	p := filepath.Join(cfg.BundleDir, "config.json")
	data, _ := os.ReadFile(p)
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = true
	data, _ = json.Marshal(&spec)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Terminal = true
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := Resize(cfg.BundleDir, 100, 30); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitExit(t, cfg)
	lines := readLog(t, cfg.LogPath)
	if len(lines) != 1 || lines[0].stream != "stdout" || strings.TrimRight(lines[0].content, "\r") != "tty" {
		t.Fatalf("log = %+v", lines)
	}
}

func TestOOMMarker(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("oom", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
	p := filepath.Join(cfg.BundleDir, "config.json")
	data, _ := os.ReadFile(p)
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	limit := int64(16 << 20)
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	data, _ = json.Marshal(&spec)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ex := waitExit(t, cfg)
	if !ex.OOM {
		t.Fatalf("exit = %+v, want OOM", ex)
	}
	t.Logf("exit after OOM: %+v", ex)
}

// A container that never reads its stdin must not stall its log: attach
// input it cannot take waits, and output goes on being logged.
func TestUnreadStdinDoesNotStallLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("unread", "echo first; sleep 2; echo second; sleep 30")
	cfg.Stdin = true
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	conn := dialAttach(t, cfg.BundleDir)
	defer conn.Close()
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// 512 KiB is more than the pipe and both socket buffers hold; the
	// writer blocks once they are full, as it should.
	go func() {
		chunk := make([]byte, 8192)
		for range 64 {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(8 * time.Second)
	for {
		var got []string
		if _, err := os.Stat(cfg.LogPath); err == nil {
			for _, l := range readLog(t, cfg.LogPath) {
				got = append(got, l.content)
			}
		}
		if strings.Join(got, "|") == "first|second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log = %q, want first|second while stdin is full", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := e.rt.Kill(ctx, cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, cfg); ex.Code != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit = %+v, want 137", ex)
	}
}

// Output is data, never log structure: binary bytes, carriage returns, a
// line far longer than one read and a line shaped like a log entry all
// come back from the log byte for byte, each entry under the monitor's
// own timestamp.
func TestHostileOutput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	forged := "2020-01-01T00:00:00.000000000Z stdout F forged"
	cfg := e.config("hostile", `printf 'a\0b\rc\n'; head -c 100000 /dev/zero | tr '\0' x; echo; echo '`+forged+`' >&2`)
	start := time.Now()
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if ex := waitExit(t, cfg); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	got := map[string]*strings.Builder{"stdout": {}, "stderr": {}}
	for _, l := range readLog(t, cfg.LogPath) {
		if len(l.content) > 8192 {
			t.Errorf("entry of %d bytes, want at most 8192", len(l.content))
		}
		if l.ts.Before(start.Add(-time.Second)) {
			t.Errorf("entry dated %v, before the container ran", l.ts)
		}
		got[l.stream].WriteString(l.content)
		if l.tag == "F" {
			got[l.stream].WriteString("\n")
		}
	}
	if want := "a\x00b\rc\n" + strings.Repeat("x", 100000) + "\n"; got["stdout"].String() != want {
		t.Errorf("stdout from the log: %d bytes, want %d (%q...)", got["stdout"].Len(), len(want), got["stdout"].String()[:min(40, got["stdout"].Len())])
	}
	if got["stderr"].String() != forged+"\n" {
		t.Errorf("stderr from the log = %q, want %q", got["stderr"].String(), forged+"\n")
	}
}

// The monitor outlives a SIGTERM (a service manager stopping berthd's
// cgroup) and still records the container's exit.
func TestMonitorSurvivesSIGTERM(t *testing.T) {
	if filepath.Base(testMonitor) == "conmon" {
		t.Skip("conmon exits on SIGTERM, SIGINT or SIGHUP")
	}
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("sigterm", "sleep 30")
	p, err := Create(ctx, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if err := syscall.Kill(p.ConmonPid, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if _, alive := ConmonAlive(cfg.Dir); !alive {
		t.Fatal("the monitor died of SIGTERM, SIGINT or SIGHUP")
	}
	if err := e.rt.Kill(ctx, cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, cfg); ex.Code != 137 {
		t.Fatalf("exit = %+v, want 137", ex)
	}
}

// A FIFO planted at the log path (a pod with a hostPath on the log dir)
// does not block the monitor at the next reopen: it keeps the old file
// and still records the exit.
func TestReopenLogFIFO(t *testing.T) {
	if filepath.Base(testMonitor) == "conmon" {
		t.Skip("conmon blocks opening a FIFO at its log path")
	}
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("fifo", "sleep 30")
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := os.Rename(cfg.LogPath, cfg.LogPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(cfg.LogPath, 0o600); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = ReopenLog(rctx, cfg.BundleDir, cfg.LogPath) // the path exists: it returns at once
	time.Sleep(200 * time.Millisecond)
	if err := e.rt.Kill(ctx, cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, cfg); ex.Code != 137 {
		t.Fatalf("exit = %+v, want 137", ex)
	}
}
