package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sharedPID bool
		wantPause []string // pause process calls
	}{
		{"own PID namespaces", false, nil},
		// Started by berthd: no runtime call.
		{"shared PID namespace: pause process", true, []string{"start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.run("web", tc.sharedPID)
			p := h.get(id)
			if p.State != Ready || p.Name != "web" || p.Namespace != "ns" || p.Hostname != "web" || p.CreatedAt == 0 {
				t.Errorf("pod: %+v", p)
			}
			if p.IP != "10.0.0.2" || !slices.Equal(p.AdditionalIPs, []string{"fd00::2"}) {
				t.Errorf("pod IPs %q %q", p.IP, p.AdditionalIPs)
			}
			for _, ns := range []string{"net", "ipc", "uts"} {
				if !h.mounts.isMountPoint(p.Namespaces[ns]) {
					t.Errorf("%s namespace not pinned: %q", ns, p.Namespaces[ns])
				}
			}
			if tc.sharedPID != h.mounts.isMountPoint(p.Namespaces["pid"]) {
				t.Errorf("pid namespace pinned: %v, want %v", h.mounts.isMountPoint(p.Namespaces["pid"]), tc.sharedPID)
			}
			var kinds []string
			for _, c := range h.pauser.Calls("") {
				kinds = append(kinds, c[:len(c)-len(id)-1])
			}
			if !slices.Equal(kinds, tc.wantPause) || len(h.rt.Calls("")) != 0 {
				t.Errorf("pause calls %q, runtime calls %q; want %q and none", h.pauser.Calls(""), h.rt.Calls(""), tc.wantPause)
			}
			if got := h.net.Calls(""); !slices.Equal(got, []string{"setup " + id}) {
				t.Errorf("network calls %q", got)
			}
			hostname, hosts, resolv, _ := p.Files(filepath.Join(h.dir, "state"))
			for path, want := range map[string]string{hostname: "web\n", resolv: "nameserver 10.0.0.10\n"} {
				if b, err := os.ReadFile(path); err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", path, b, err, want)
				}
			}
			if _, err := os.Stat(hosts); err != nil {
				t.Errorf("hosts file: %v", err)
			}
			if _, err := os.Stat(p.LogDirectory); err != nil {
				t.Errorf("log directory not made: %v", err)
			}
			if stored, ok := h.stored(id); !ok || stored.State != Ready {
				t.Errorf("stored: %v %v", ok, stored.State)
			}
			// The pod's name is taken while it exists.
			if _, err := h.s.Run(context.Background(), h.podConfig("web", tc.sharedPID), ""); err == nil {
				t.Errorf("a second pod with the same metadata was made")
			}
		})
	}
}

func TestRunRefused(t *testing.T) {
	h := newHarness(t)
	bad := h.podConfig("web", false)
	bad.Metadata.Uid = ""
	if _, err := h.s.Run(context.Background(), bad, ""); !errdefs.IsInvalid(err) {
		t.Errorf("pod without uid: %v, want InvalidArgument", err)
	}
	if _, err := h.s.Run(context.Background(), h.podConfig("web", false), "nosuch"); !errdefs.IsInvalid(err) {
		t.Errorf("unknown handler: %v, want InvalidArgument", err)
	}
	if len(h.mounts.Calls("")) != 0 || len(h.net.Calls("")) != 0 || len(h.s.List()) != 0 {
		t.Errorf("refused pods did something: mounts %q network %q", h.mounts.Calls(""), h.net.Calls(""))
	}
	h.assertNothingHeld()
}

// TestRunFailureUndoes: a pod create failing at any step leaves nothing
// behind, and its name is free for the retry.
func TestRunFailureUndoes(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		sharedPID bool
		setup     func(h *harness, cancel context.CancelFunc)
	}{
		{"pod files mount fails", false, func(h *harness, _ context.CancelFunc) { h.mounts.failOn("files", boom) }},
		{"shm mount fails", false, func(h *harness, _ context.CancelFunc) { h.mounts.failOn("shm", boom) }},
		{"namespace pin fails", false, func(h *harness, _ context.CancelFunc) { h.mounts.failOn("pin", boom) }},
		{"pause start fails", true, func(h *harness, _ context.CancelFunc) { h.pauser.failOn("start", boom) }},
		{"pid namespace pin fails", true, func(h *harness, _ context.CancelFunc) { h.mounts.failOn("bind", boom) }},
		{"network setup fails", false, func(h *harness, _ context.CancelFunc) { h.net.failOn("setup", boom) }},
		{"network setup fails with a pause process", true, func(h *harness, _ context.CancelFunc) { h.net.failOn("setup", boom) }},
		{"caller gone after network setup", false, func(h *harness, cancel context.CancelFunc) {
			h.net.failOn("setup", nil)
			h.s.cfg.Network = &cancelingNetwork{h.net, cancel}
		}},
		{"record write fails", true, func(h *harness, _ context.CancelFunc) { h.store.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.setup(h, cancel)
			id, err := h.s.Run(ctx, h.podConfig("web", tc.sharedPID), "")
			if err == nil || id != "" {
				t.Fatalf("run = %q, %v; want an error", id, err)
			}
			h.assertNothingHeld()
			if len(h.s.List()) != 0 {
				t.Errorf("failed pod listed")
			}
			// (A failed Setup undoes itself; one that succeeded is torn
			// down: assertNothingHeld sees no attachment.)
			if tc.name == "record write fails" {
				return
			}
			h.mounts.fail, h.net.fail, h.rt.fail, h.pauser.fail = nil, nil, nil, nil
			h.s.cfg.Network = h.net
			h.run("web", tc.sharedPID)
		})
	}
}

// cancelingNetwork ends the caller's context once the network is set up:
// the create is abandoned after its last step but one.
type cancelingNetwork struct {
	*fakeNetwork
	cancel context.CancelFunc
}

func (n *cancelingNetwork) Setup(ctx context.Context, p *Sandbox, cfg *runtimeapiPodConfig) ([]string, error) {
	ips, err := n.fakeNetwork.Setup(ctx, p, cfg)
	n.cancel()
	return ips, err
}

func TestStop(t *testing.T) {
	ctx := context.Background()
	for _, sharedPID := range []bool{false, true} {
		h := newHarness(t)
		id := h.run("web", sharedPID)
		if err := h.s.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		p := h.get(id)
		if p.State != NotReady || len(p.Namespaces) != 0 {
			t.Errorf("stopped pod: %v %v", p.State, p.Namespaces)
		}
		if n := h.mounts.count(); n != 0 {
			t.Errorf("stopped pod holds %d mounts", n)
		}
		if len(h.net.attached) != 0 || h.pauses() != 0 {
			t.Errorf("stopped pod holds network %v, pause processes %d", h.net.attached, h.pauses())
		}
		if stored, ok := h.stored(id); !ok || stored.State != NotReady {
			t.Errorf("stored %v %v", stored.State, ok)
		}
		// Idempotent, and for unknown pods too: no more host work.
		mounts, net, rt := len(h.mounts.Calls("")), len(h.net.Calls("")), len(h.rt.Calls(""))+len(h.pauser.Calls(""))
		if err := h.s.Stop(ctx, id); err != nil {
			t.Errorf("second stop: %v", err)
		}
		if err := h.s.Stop(ctx, "nosuch"); err != nil {
			t.Errorf("stop of an unknown pod: %v", err)
		}
		if len(h.mounts.Calls("")) != mounts || len(h.net.Calls("")) != net || len(h.rt.Calls(""))+len(h.pauser.Calls("")) != rt {
			t.Errorf("repeated stop worked again: mounts %q network %q runtime %q",
				h.mounts.Calls("")[mounts:], h.net.Calls("")[net:], h.rt.Calls("")[rt:])
		}
	}
}

// TestStopNetworkFails: a failed network teardown leaves the pod ready, and
// the retried stop finishes it.
func TestStopNetworkFails(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	id := h.run("web", false)
	h.net.failOn("teardown", errors.New("cni: plugin timed out"))
	if err := h.s.Stop(ctx, id); err == nil {
		t.Fatal("stop succeeded with a failing network teardown")
	}
	if p := h.get(id); p.State != Ready {
		t.Errorf("state %v after a failed stop, want ready", p.State)
	}
	h.net.failOn("teardown", nil)
	if err := h.s.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if p := h.get(id); p.State != NotReady || len(h.net.attached) != 0 {
		t.Errorf("after the retried stop: %v, network %v", p.State, h.net.attached)
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		sharedPID bool
		stopFirst bool
	}{
		{"stopped", false, true},
		{"ready (stopped first)", false, false},
		{"ready with a pause process", true, false},
		{"stopped with a pause process", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.run("web", tc.sharedPID)
			if tc.stopFirst {
				if err := h.s.Stop(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.s.Remove(ctx, id); err != nil {
				t.Fatal(err)
			}
			if _, err := h.s.Get(id); !errdefs.IsNotFound(err) {
				t.Errorf("removed pod still listed: %v", err)
			}
			if _, ok := h.stored(id); ok {
				t.Errorf("removed pod still stored")
			}
			h.assertNothingHeld()
			// A pod without a pause process costs no runtime call.
			if !tc.sharedPID && len(h.rt.Calls("")) != 0 {
				t.Errorf("runtime calls for a pod without a pause process: %q", h.rt.Calls(""))
			}
			// Idempotent, and for unknown pods.
			n := len(h.mounts.Calls("")) + len(h.net.Calls("")) + len(h.rt.Calls(""))
			if err := h.s.Remove(ctx, id); err != nil {
				t.Errorf("second remove: %v", err)
			}
			if err := h.s.Remove(ctx, "nosuch"); err != nil {
				t.Errorf("remove of an unknown pod: %v", err)
			}
			if m := len(h.mounts.Calls("")) + len(h.net.Calls("")) + len(h.rt.Calls("")); m != n {
				t.Errorf("repeated remove did host work")
			}
			// The name is free again.
			h.run("web", tc.sharedPID)
		})
	}
}

// TestRecover: what a restarted berthd finds on the host.
func TestRecover(t *testing.T) {
	h := newHarness(t)
	intact := h.run("intact", false)
	lost := h.run("lost", true)
	stopped := h.run("stopped", false)
	if err := h.s.Stop(context.Background(), stopped); err != nil {
		t.Fatal(err)
	}
	// A reboot (or a stop cut short) took some of lost's namespaces.
	lp := h.get(lost)
	if err := h.mounts.unpinNamespaces(map[string]string{"net": lp.Namespaces["net"]}); err != nil {
		t.Fatal(err)
	}
	// A create cut short by a crash left a pod dir without a record.
	half := filepath.Join(h.dir, "state", "sandboxes", "half")
	if err := h.mounts.mountShm(filepath.Join(half, "shm")); err != nil {
		t.Fatal(err)
	}

	h.s = h.open()
	if p := h.get(intact); p.State != Ready {
		t.Errorf("intact pod %v after restart, want ready", p.State)
	}
	if p := h.get(stopped); p.State != NotReady {
		t.Errorf("stopped pod %v after restart", p.State)
	}
	p := h.get(lost)
	if p.State != NotReady || len(p.Namespaces) != 0 {
		t.Errorf("pod with lost namespaces: %v %v, want not ready", p.State, p.Namespaces)
	}
	if stored, ok := h.stored(lost); !ok || stored.State != NotReady {
		t.Errorf("stored %v %v", stored.State, ok)
	}
	// Its stop was finished: nothing of it is left on the host.
	for path := range h.mounts.mounted {
		if filepath.Base(filepath.Dir(path)) == lost || filepath.Base(filepath.Dir(filepath.Dir(path))) == lost {
			t.Errorf("mount of the lost pod left: %s", path)
		}
	}
	if h.net.attached[lost] {
		t.Errorf("network of the lost pod still attached")
	}
	if n := h.pauser.Find("")[lost]; len(n) != 0 {
		t.Errorf("pause process of the lost pod left")
	}
	// The half-created pod is gone, its network torn down.
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-created pod dir left: %v", err)
	}
	if !slices.Contains(h.net.Calls("teardown"), "teardown half") {
		t.Errorf("network of the half-created pod not torn down: %q", h.net.Calls("teardown"))
	}
	if _, err := h.s.Get("half"); !errdefs.IsNotFound(err) {
		t.Errorf("half-created pod listed")
	}
	// Names stay taken.
	if _, err := h.s.Run(context.Background(), h.podConfig("intact", false), ""); err == nil {
		t.Errorf("name of a restored pod reused")
	}
	// Everything goes with removal.
	for _, id := range []string{intact, lost, stopped} {
		if err := h.s.Remove(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	h.assertNothingHeld()
}

// TestRunPodSandboxHandler: under a handler that runs a pod as one sandbox
// (gVisor) every pod gets a pause container, started without a PID pin.
func TestRunPodSandboxHandler(t *testing.T) {
	h := newHarness(t)
	h.rt.podSandbox = true
	id := h.run("web", false)
	if got := h.rt.Calls(""); !slices.Equal(got, []string{"create " + id, "start " + id}) {
		t.Errorf("runtime calls %q, want create and start", got)
	}
	if p := h.get(id); p.Namespaces["pid"] != "" {
		t.Errorf("pid namespace pinned for a pod with its own: %q", p.Namespaces["pid"])
	}
	if err := h.s.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	h.assertNothingHeld()
}

// TestStopPauseFails: a pause process the runtime cannot delete keeps the
// pod ready; the retry finishes the stop.
func TestStopPauseFails(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	id := h.run("web", true)
	h.pauser.failOn("kill", errors.New("pause process did not exit"))
	if err := h.s.Stop(ctx, id); err == nil {
		t.Fatal("stop succeeded while the pause process could not be killed")
	}
	if p := h.get(id); p.State != Ready {
		t.Errorf("state %v after a failed stop", p.State)
	}
	h.pauser.failOn("kill", nil)
	if err := h.s.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if h.pauses() != 0 || h.mounts.count() != 0 {
		t.Errorf("after the retried stop: pause processes %d, mounts %d", h.pauses(), h.mounts.count())
	}
}

// TestRecoverDirectPause: what a restarted berthd does with the pause
// processes it started itself.
func TestRecoverDirectPause(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	intact := h.run("intact", true)
	died := h.run("died", true)
	// A pause process died while berthd was down (its PID namespace is empty).
	for pp, id := range h.pauser.running {
		if id == died {
			delete(h.pauser.running, pp)
		}
	}
	// A create cut short between the start and the record: a pause
	// process and a record without its pid, in a pod dir with no pod.
	half := filepath.Join(h.dir, "state", "sandboxes", "half")
	if err := os.MkdirAll(half, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, pauseRecordFile), []byte(`{"cgroup":"/berth-test-none/half"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.pauser.running[PauseProc{PID: 1, StartTime: 1000}] = "half"
	// And one the intact pod does not own (a retried create's leftover).
	h.pauser.running[PauseProc{PID: 2, StartTime: 1001}] = intact

	h.s = h.open()
	if p := h.get(intact); p.State != Ready {
		t.Errorf("intact pod %v after restart, want ready", p.State)
	}
	if got := h.pauser.Find("")[intact]; len(got) != 1 || got[0].PID != os.Getpid() {
		t.Errorf("pause processes of the intact pod after restart: %v, want its own only", got)
	}
	if p := h.get(died); p.State != NotReady {
		t.Errorf("pod whose pause process died: %v, want not ready", p.State)
	}
	if got := h.pauser.Find("")["half"]; len(got) != 0 {
		t.Errorf("pause process of a half-created pod left: %v", got)
	}
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-created pod dir left: %v", err)
	}
	for _, id := range []string{intact, died} {
		if err := h.s.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	h.assertNothingHeld()
}

// TestStopPauseRecordWithoutPid: a record that names no process (a crash
// between the start and the record) has its pause process found by its
// command line and killed.
func TestStopPauseRecordWithoutPid(t *testing.T) {
	h := newHarness(t)
	id := h.run("web", true)
	p := h.get(id)
	rec, ok, err := readPauseRecord(p.Dir(h.s.cfg.StateDir))
	if !ok || err != nil || rec.PID == 0 || rec.Cgroup == "" {
		t.Fatalf("pause record %+v, %v, %v", rec, ok, err)
	}
	if err := writePauseRecord(p.Dir(h.s.cfg.StateDir), pauseRecord{Cgroup: rec.Cgroup}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	h.assertNothingHeld()
}

// TestOlderBerthdPause: a shared-PID pod whose pause process an older
// berthd ran through the runtime (its bundle says so) stops and is removed
// through the runtime.
func TestOlderBerthdPause(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	// The runtime path, as every shared-PID pod had it before.
	h.rt.podSandbox = true
	id := h.run("old", true)
	h.rt.podSandbox = false
	if h.rt.live() != 1 || h.pauser.live() != 0 {
		t.Fatalf("runtime pauses %d, direct %d", h.rt.live(), h.pauser.live())
	}
	h.s = h.open()
	if p := h.get(id); p.State != Ready {
		t.Fatalf("old pod %v after restart", p.State)
	}
	if err := h.s.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := h.rt.Calls("delete"); !slices.Equal(got, []string{"delete " + id}) {
		t.Errorf("runtime deletes %q, want the old pause's", got)
	}
	if err := h.s.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.assertNothingHeld()
}

// TestPauseExited: a pause process that exits by itself while berthd runs
// leaves its pod NOTREADY, its network and namespaces released; stop and
// removal then have nothing left to do but the record.
func TestPauseExited(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	id := h.run("web", true)
	other := h.run("other", true)
	h.pauser.exit(id)
	p := h.get(id)
	if p.State != NotReady || len(p.Namespaces) != 0 {
		t.Errorf("pod whose pause process exited: %v %v, want not ready", p.State, p.Namespaces)
	}
	if stored, ok := h.stored(id); !ok || stored.State != NotReady {
		t.Errorf("stored %v %v", stored.State, ok)
	}
	if h.net.attached[id] {
		t.Errorf("network still attached")
	}
	if h.get(other).State != Ready {
		t.Errorf("another pod changed")
	}
	for _, pid := range []string{id, other} {
		if err := h.s.Stop(ctx, pid); err != nil {
			t.Fatal(err)
		}
		if err := h.s.Remove(ctx, pid); err != nil {
			t.Fatal(err)
		}
	}
	h.assertNothingHeld()
}
