package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// preparedHarness is a harness whose network can be prepared ahead, with
// the first prepared network ready.
func preparedHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.s.Close()
	h.net.prepare = true
	h.s = h.open()
	t.Cleanup(h.s.Close)
	h.waitPrepared("")
	return h
}

// waitPrepared waits for a prepared network other than not, and returns
// its id.
func (h *harness) waitPrepared(not string) string {
	h.t.Helper()
	return h.waitNext("a prepared network", func(pn *preparedPod) bool { return pn.id != not }).id
}

// waitNext waits up to 5 s for a prepared pod that ok accepts.
func (h *harness) waitNext(what string, ok func(*preparedPod) bool) *preparedPod {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pn := h.next(); pn != nil && ok(pn) {
			return pn
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no %s after 5 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// next is the prepared pod ready now, or nil.
func (h *harness) next() *preparedPod {
	h.s.prep.mu.Lock()
	defer h.s.prep.mu.Unlock()
	return h.s.prep.next
}

func (h *harness) preparedDirs() []string {
	es, _ := os.ReadDir(filepath.Join(h.dir, "state", preparedDir))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A pod takes the prepared network: its id is the prepared one's, its
// namespace the prepared one moved into its dir, and its network is not
// set up again; the next one is prepared, and the pod's stop and remove
// release its network as any pod's.
func TestPreparedNetworkTaken(t *testing.T) {
	h := preparedHarness(t)
	prep := h.waitPrepared("")
	if got := h.net.Calls("setup"); !slices.Equal(got, []string{"setup " + prep}) {
		t.Fatalf("setup calls %q, want the prepared one's", got)
	}
	id := h.run("web", false)
	if id != prep {
		t.Fatalf("pod id %s, want the prepared %s", id, prep)
	}
	p := h.get(id)
	netns := filepath.Join(p.Dir(h.s.cfg.StateDir), "netns")
	if p.Namespaces["net"] != netns || !h.mounts.isMountPoint(netns) {
		t.Errorf("net namespace %q (mounted %v), want %s", p.Namespaces["net"], h.mounts.isMountPoint(netns), netns)
	}
	for _, k := range []string{"uts", "ipc"} {
		if !h.mounts.isMountPoint(p.Namespaces[k]) {
			t.Errorf("%s namespace %q not pinned", k, p.Namespaces[k])
		}
	}
	if p.IP != "10.0.0.2" || !slices.Equal(p.AdditionalIPs, []string{"fd00::2"}) {
		t.Errorf("pod IPs %s %v", p.IP, p.AdditionalIPs)
	}
	n := 0
	for _, c := range h.net.Calls("setup") {
		if c == "setup "+id {
			n++
		}
	}
	if n != 1 {
		t.Errorf("setup calls %q: the pod's network was set up again", h.net.Calls("setup"))
	}
	if st, ok := h.stored(id); !ok || st.Namespaces["net"] != netns {
		t.Errorf("record %+v, %v", st, ok)
	}
	// The next is prepared once the pod start calls are over, not at once.
	h.s.prep.mu.Lock()
	early := h.s.prep.next != nil || h.s.prep.preparing
	h.s.prep.mu.Unlock()
	if early {
		t.Error("the next network is prepared during the pod start")
	}
	h.s.PrepareAhead()
	next := h.waitPrepared(prep)
	if dirs := h.preparedDirs(); !slices.Equal(dirs, []string{next}) {
		t.Errorf("prepared dirs %v, want [%s]", dirs, next)
	}
	h.stopRemove(id)
	if !slices.Contains(h.net.Calls("teardown"), "teardown "+id) {
		t.Errorf("pod network not torn down: %q", h.net.Calls("teardown"))
	}
	h.s.Close()
	h.assertNothingHeld()
	if dirs := h.preparedDirs(); len(dirs) != 0 {
		t.Errorf("prepared dirs after Close: %v", dirs)
	}
}

// Pods whose network the prepared one is not (host ports, host network,
// a network no longer preparable) leave it alone and set up their own.
func TestPreparedNetworkNotTaken(t *testing.T) {
	h := preparedHarness(t)
	prep := h.waitPrepared("")
	ports := h.podConfig("ports", false)
	ports.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}}
	id, err := h.s.Run(context.Background(), ports, "")
	if err != nil {
		t.Fatal(err)
	}
	hostNet := h.podConfig("hostnet", false)
	hostNet.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	id2, err := h.s.Run(context.Background(), hostNet, "")
	if err != nil {
		t.Fatal(err)
	}
	if id == prep || id2 == prep {
		t.Fatalf("pods %s, %s took the prepared %s", id, id2, prep)
	}
	if !slices.Contains(h.net.Calls("setup"), "setup "+id) {
		t.Errorf("the host-port pod's network was not set up: %q", h.net.Calls("setup"))
	}
	if got := h.waitPrepared(""); got != prep {
		t.Errorf("prepared %s, want %s still", got, prep)
	}
	// The network changes (a CNI config appears): the next pod sets up
	// its own, and the prepared one goes.
	h.net.mu.Lock()
	h.net.prepare = false
	h.net.mu.Unlock()
	id3 := h.run("after", false)
	h.s.PrepareAhead() // as a container start does
	if id3 == prep {
		t.Fatal("a pod took a network prepared for another one")
	}
	if !slices.Contains(h.net.Calls("teardown"), "teardown "+prep) || len(h.preparedDirs()) != 0 {
		t.Errorf("stale prepared network not removed: teardowns %q, dirs %v", h.net.Calls("teardown"), h.preparedDirs())
	}
}

// A create that fails after taking the prepared network undoes it with
// everything else.
func TestPreparedNetworkFailedCreate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness, cfg *runtimeapi.PodSandboxConfig)
	}{
		{"pause start fails", func(h *harness, _ *runtimeapi.PodSandboxConfig) { h.pauser.failOn("start", errors.New("boom")) }},
		{"hostname fails", func(h *harness, _ *runtimeapi.PodSandboxConfig) { h.mounts.failOn("hostname", errors.New("boom")) }},
		// Refused before the pod dir exists.
		{"cgroup parent refused", func(h *harness, cfg *runtimeapi.PodSandboxConfig) { cfg.Linux.CgroupParent = "foo-.slice" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := preparedHarness(t)
			prep := h.waitPrepared("")
			cfg := h.podConfig("web", true)
			tc.setup(h, cfg)
			if id, err := h.s.Run(context.Background(), cfg, ""); err == nil {
				t.Fatalf("run = %s, want an error", id)
			}
			if !slices.Contains(h.net.Calls("teardown"), "teardown "+prep) {
				t.Errorf("taken network not torn down: %q", h.net.Calls("teardown"))
			}
			h.mounts.failOn("hostname", nil)
			h.pauser.failOn("start", nil)
			h.s.Close()
			h.assertNothingHeld()
		})
	}
}

// A berthd that dies leaves its prepared network; the next one removes it
// and prepares its own.
func TestPreparedNetworkRecovered(t *testing.T) {
	h := preparedHarness(t)
	old := h.waitPrepared("")
	h.s = h.open() // the old service is gone without Close, as in a crash
	t.Cleanup(h.s.Close)
	next := h.waitPrepared(old)
	if !slices.Contains(h.net.Calls("teardown"), "teardown "+old) {
		t.Errorf("crashed berthd's prepared network not torn down: %q", h.net.Calls("teardown"))
	}
	if dirs := h.preparedDirs(); !slices.Equal(dirs, []string{next}) {
		t.Errorf("prepared dirs %v, want [%s]", dirs, next)
	}
	if len(h.podDirs()) != 0 {
		t.Errorf("pod dirs %v", h.podDirs())
	}
}

// A failed preparation is not retried at once: each Run would otherwise
// make and pin a namespace for nothing (an exhausted subnet).
func TestPreparedNetworkRetry(t *testing.T) {
	h := newHarness(t)
	h.s.Close()
	h.net.prepare = true
	h.net.failOn("setup", errors.New("no IP addresses available"))
	h.s = h.open()
	t.Cleanup(h.s.Close)
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.s.prep.mu.Lock()
		failed := !h.s.prep.failedAt.IsZero() && !h.s.prep.preparing
		h.s.prep.mu.Unlock()
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the preparation did not fail")
		}
		time.Sleep(time.Millisecond)
	}
	if dirs := h.preparedDirs(); len(dirs) != 0 {
		t.Errorf("a failed preparation left %v", dirs)
	}
	h.s.refillPrepared()
	h.s.prep.mu.Lock()
	again := h.s.prep.preparing
	h.s.prep.mu.Unlock()
	if again || len(h.net.Calls("setup")) != 1 {
		t.Errorf("retried at once: preparing %v, setup calls %q", again, h.net.Calls("setup"))
	}
	h.s.Close()
	h.assertNothingHeld()
}

// Without a PrepareAhead (no container start comes after the pod), the
// next network is prepared a second after the RunPodSandbox.
func TestPreparedNetworkRefillWithoutStart(t *testing.T) {
	h := preparedHarness(t)
	prep := h.waitPrepared("")
	if id := h.run("lonely", false); id != prep {
		t.Fatalf("pod %s, want the prepared %s", id, prep)
	}
	start := time.Now()
	next := h.waitPrepared(prep)
	if d := time.Since(start); d < refillAfter/2 {
		t.Errorf("prepared %s after %v, before the fallback", next, d)
	}
}

// pausedHarness is a preparedHarness whose next prepared pod has a pause
// process: a pod sharing its PID namespace came before it.
func pausedHarness(t *testing.T) (*harness, *preparedPod) {
	t.Helper()
	h := preparedHarness(t)
	first := h.run("first", true)
	h.s.PrepareAhead()
	h.waitPrepared(first)
	pn := h.next()
	if pn.pause == nil || !h.pauser.Alive(pn.pause.PauseProc) {
		t.Fatalf("prepared after a shared-PID pod without a live pause process: %+v", pn.pause)
	}
	if err := h.s.Stop(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Remove(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	return h, pn
}

// A pod sharing its PID namespace takes the pause process prepared with
// the namespaces, moved into its cgroup, and its hostname is set; a pod
// that does not ends it, and the next is prepared without one.
func TestPreparedPauseTaken(t *testing.T) {
	h, pn := pausedHarness(t)
	starts := len(h.pauser.Calls("start"))
	id := h.run("shared", true)
	if id != pn.id {
		t.Fatalf("pod %s, want the prepared %s", id, pn.id)
	}
	if n := len(h.pauser.Calls("start")); n != starts {
		t.Errorf("pause processes started at the take: %d", n-starts)
	}
	p := h.get(id)
	dir := p.Dir(h.s.cfg.StateDir)
	if p.Namespaces["pid"] != filepath.Join(dir, "pidns") || !h.mounts.isMountPoint(p.Namespaces["pid"]) {
		t.Errorf("pid namespace %q not the prepared one's", p.Namespaces["pid"])
	}
	cg, _ := h.s.pauseCgroupsPath(p)
	if got := h.pauser.cgroup(id); got != cg {
		t.Errorf("pause process in cgroup %q, want the pod's %q", got, cg)
	}
	if rec, ok, err := readPauseRecord(dir); !ok || err != nil || rec.PauseProc != pn.pause.PauseProc || rec.Cgroup != cg {
		t.Errorf("pause record %+v, %v, %v", rec, ok, err)
	}
	if b, _ := os.ReadFile(p.Namespaces["uts"] + ".hostname"); string(b) != "shared" {
		t.Errorf("hostname %q, want shared", b)
	}
	h.stopRemove(id)
	if h.pauses() != 0 {
		t.Errorf("%d pause processes after the pod's removal", h.pauses())
	}

	h.s.PrepareAhead()
	next := h.waitPrepared(id)
	paused := h.next().pause != nil
	if !paused {
		t.Fatal("prepared after a shared-PID pod without a pause process")
	}
	own := h.run("own", false)
	if own != next {
		t.Fatalf("pod %s, want the prepared %s", own, next)
	}
	p = h.get(own)
	if h.pauses() != 0 || p.Namespaces["pid"] != "" || h.mounts.isMountPoint(filepath.Join(p.Dir(h.s.cfg.StateDir), "pidns")) {
		t.Errorf("a pod with a PID namespace per container kept the prepared pause: %d running, pid %q", h.pauses(), p.Namespaces["pid"])
	}
	if h.s.hasDirectPause(p) {
		t.Error("pause record left in the pod dir")
	}
	h.s.PrepareAhead()
	h.waitPrepared(own)
	paused = h.next().pause != nil
	if paused {
		t.Error("prepared with a pause process after a pod without one")
	}
	h.stopRemove(own)
	h.s.Close()
	h.assertNothingHeld()
}

// A prepared pause process is not taken by a pod in the host's IPC
// namespace (it is in the prepared one), nor when it exited: the pod
// starts its own; and a failed move into the pod cgroup fails the create
// and leaves nothing.
func TestPreparedPauseNotTaken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(h *harness, pn *preparedPod, cfg *runtimeapi.PodSandboxConfig)
		wantErr bool
	}{
		{"host IPC", func(_ *harness, _ *preparedPod, cfg *runtimeapi.PodSandboxConfig) {
			cfg.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
		}, false},
		{"exited", func(h *harness, pn *preparedPod, _ *runtimeapi.PodSandboxConfig) { h.pauser.exit(pn.id) }, false},
		{"move fails", func(h *harness, _ *preparedPod, _ *runtimeapi.PodSandboxConfig) {
			h.pauser.failOn("move", errors.New("boom"))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h, pn := pausedHarness(t)
			cfg := h.podConfig("shared", true)
			tc.setup(h, pn, cfg)
			starts := len(h.pauser.Calls("start"))
			id, err := h.s.Run(ctx, cfg, "")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("run = %s, want an error", id)
				}
				if h.pauses() != 0 || len(h.podDirs()) != 0 {
					t.Errorf("a failed create left %d pause processes, pod dirs %v", h.pauses(), h.podDirs())
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if id != pn.id {
					t.Fatalf("pod %s, want the prepared %s", id, pn.id)
				}
				if n := len(h.pauser.Calls("start")); n != starts+1 || h.pauser.Alive(pn.pause.PauseProc) || h.pauses() != 1 {
					t.Errorf("starts %d, prepared pause alive %v, running %d: want the prepared one ended and one started",
						n-starts, h.pauser.Alive(pn.pause.PauseProc), h.pauses())
				}
				if p := h.get(id); p.HostIPC && h.mounts.isMountPoint(filepath.Join(p.Dir(h.s.cfg.StateDir), "ipcns")) {
					t.Error("a host-IPC pod kept the prepared IPC namespace")
				}
				h.stopRemove(id)
			}
			h.pauser.failOn("move", nil)
			h.s.Close()
			h.assertNothingHeld()
		})
	}
}

// A berthd that dies leaves its prepared pause process; the next one ends
// it, also when its record has no pid (a crash between its start and the
// record: found by its environment).
func TestPreparedPauseRecovered(t *testing.T) {
	for _, withPid := range []bool{true, false} {
		h, pn := pausedHarness(t)
		if !withPid {
			if err := writePauseRecord(h.s.preparedPath(pn.id), pauseRecord{}); err != nil {
				t.Fatal(err)
			}
		}
		h.crash()
		h.waitPrepared(pn.id)
		if h.pauser.Alive(pn.pause.PauseProc) {
			t.Errorf("record with pid %v: the crashed berthd's prepared pause process runs on", withPid)
		}
		h.s.Close()
		h.assertNothingHeld()
	}
}

// crash opens a new service over the harness as berthd's start after a
// crash; the old one's background work is stopped first, without its
// teardown, as a killed berthd's would be.
func (h *harness) crash() {
	h.t.Helper()
	old := h.s
	old.prep.mu.Lock()
	old.prep.closed = true
	if old.prep.timerSet {
		old.prep.timer.Stop()
		old.prep.timerSet = false
	}
	old.prep.mu.Unlock()
	old.prep.done.Wait()
	h.s = h.open()
}

// A restarted berthd prepares the next pod as the last pod made: with a
// pause process after a shared-PID pod.
func TestPreparedPauseAfterRestart(t *testing.T) {
	for _, shared := range []bool{true, false} {
		h := preparedHarness(t)
		id := h.run("last", shared)
		h.crash()
		next := h.waitPrepared(id)
		paused := h.next().pause != nil
		if paused != shared {
			t.Errorf("after a pod sharing its PID namespace %v, prepared %s with a pause process %v", shared, next, paused)
		}
		h.stopRemove(id)
		h.s.Close()
		h.assertNothingHeld()
	}
}

// A pod that took the prepared pause process keeps it across a crash of
// berthd: the pause process no pod owns are killed at start, and this one,
// found under the prepared dir by its environment, is the pod's.
func TestPreparedPauseAdoptedKeptAfterCrash(t *testing.T) {
	h, pn := pausedHarness(t)
	id := h.run("shared", true)
	if id != pn.id {
		t.Fatalf("pod %s, want the prepared %s", id, pn.id)
	}
	h.crash()
	if p := h.get(id); p.State != Ready {
		t.Errorf("pod %v after the crash, want ready", p.State)
	}
	if !h.pauser.Alive(pn.pause.PauseProc) {
		t.Error("the pod's pause process, prepared ahead, was killed at start")
	}
	h.stopRemove(id)
	h.s.Close()
	h.assertNothingHeld()
}

// A prepared pause process that exits during the take's move is not the
// pod's: the pod starts its own, and nothing of the old one is left.
func TestPreparedPauseExitsDuringMove(t *testing.T) {
	h, pn := pausedHarness(t)
	h.pauser.exit(pn.id)
	// Alive said yes before the move: a fake that lies once.
	h.pauser.aliveOnce = true
	id := h.run("shared", true)
	if h.pauses() != 1 || h.pauser.cgroup(id) == "" {
		t.Errorf("running pause processes %d (cgroup %q), want the pod's own", h.pauses(), h.pauser.cgroup(id))
	}
	h.stopRemove(id)
	h.s.Close()
	h.assertNothingHeld()
}

// A pause process that fails to start ahead leaves the prepared pod of
// use: it is prepared without one, and the pod that takes it starts its
// own.
func TestPreparedPauseStartFails(t *testing.T) {
	h := preparedHarness(t)
	first := h.run("first", true)
	h.pauser.failOn("start", errors.New("boom"))
	h.s.PrepareAhead()
	next := h.waitPrepared(first)
	pn := h.next()
	if pn.pause != nil {
		t.Fatalf("prepared with a pause process whose start failed: %+v", pn.pause)
	}
	h.pauser.failOn("start", nil)
	id := h.run("second", true)
	if id != next || h.pauser.cgroup(id) == "" {
		t.Errorf("pod %s (want the prepared %s) without a pause process of its own", id, next)
	}
	h.stopRemove(first, id)
	h.s.Close()
	h.assertNothingHeld()
}

// A prepared pod ready without a pause process gets one once a pod that
// shares its PID namespace came (here one with a host port, which takes
// no prepared pod), and keeps its id.
func TestPreparedPauseAdded(t *testing.T) {
	ctx := context.Background()
	h := preparedHarness(t)
	prep := h.waitPrepared("")
	cfg := h.podConfig("ports", true)
	cfg.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}}
	ports, err := h.s.Run(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	h.s.PrepareAhead()
	if pn := h.waitNext("pause process added", func(pn *preparedPod) bool { return pn.pause != nil }); pn.id != prep {
		t.Errorf("prepared %s, want %s with a pause process added", pn.id, prep)
	}
	h.stopRemove(ports)
	h.s.Close()
	h.assertNothingHeld()
}
