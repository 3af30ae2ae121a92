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
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.s.prep.mu.Lock()
		pn := h.s.prep.next
		h.s.prep.mu.Unlock()
		if pn != nil && pn.id != not {
			return pn.id
		}
		if time.Now().After(deadline) {
			h.t.Fatal("no prepared network after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
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
	ctx := context.Background()
	if err := h.s.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
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
		{"namespace pin fails", func(h *harness, _ *runtimeapi.PodSandboxConfig) { h.mounts.failOn("pin", errors.New("boom")) }},
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
			h.mounts.failOn("pin", nil)
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
