package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
)

func TestCreate(t *testing.T) {
	h := newHarness(t)
	id := h.create("app")
	c := h.get(id)
	if c.State != Created || c.PodID != testPod || c.Name != "app" || c.Pid == 0 || c.CreatedAt == 0 {
		t.Errorf("created container: %+v", c)
	}
	if got := h.rt.Calls(""); !slices.Equal(got, []string{"create " + id}) {
		t.Errorf("runtime calls %q, want one create", got)
	}
	if st, ok := h.stored(id); !ok || st.State != Created {
		t.Errorf("stored record: %v %+v", ok, st)
	}
	if _, err := os.Stat(filepath.Join(h.s.bundleDir(id), "config.json")); err != nil {
		t.Errorf("no OCI spec in the bundle: %v", err)
	}
	if !h.rootfs.IsMounted(h.s.rootfs(id)) {
		t.Errorf("rootfs not prepared")
	}
	if fi, err := os.Stat(filepath.Dir(c.LogPath)); err != nil || !fi.IsDir() {
		t.Errorf("log dir of %s not made: %v", c.LogPath, err)
	}
	if !h.s.LayerInUse("sha256:l1") {
		t.Errorf("image layer not counted as in use")
	}
	// The same name in the same pod is taken while the container exists.
	if _, err := h.s.Create(context.Background(), testPod, containerConfig("app"), podConfig()); err == nil {
		t.Errorf("second container with the name of a live one was created")
	}
}

// TestCreateRefused: bad requests change nothing and say why with the
// right error kind.
func TestCreateRefused(t *testing.T) {
	h := newHarness(t)
	h.pods.pods["stopped"] = &sandbox.Sandbox{ID: "stopped", State: sandbox.NotReady, RuntimeHandler: "fake"}
	noImage := containerConfig("app")
	noImage.Image.Image = "nosuch"
	for _, tc := range []struct {
		name string
		pod  string
		cfg  func() any
		want func(error) bool
	}{
		{"unknown pod", "nosuch", nil, errdefs.IsNotFound},
		{"pod not ready", "stopped", nil, isPrecondition},
		{"image not pulled", testPod, func() any { return noImage }, errdefs.IsNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := containerConfig("app")
			if tc.cfg != nil {
				cfg = noImage
			}
			_, err := h.s.Create(context.Background(), tc.pod, cfg, podConfig())
			if !tc.want(err) {
				t.Errorf("err = %v", err)
			}
		})
	}
	if calls := h.rt.Calls(""); len(calls) != 0 || len(h.s.List()) != 0 || len(h.containerDirs()) != 0 {
		t.Errorf("refused creates left calls %q, containers %d, dirs %q", calls, len(h.s.List()), h.containerDirs())
	}
}

// TestCreateFailureUndoes: a create failing at any step leaves nothing
// behind (bundle, writable layer, mount, runtime state, record, name).
func TestCreateFailureUndoes(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name        string
		setup       func(h *harness, cancel context.CancelFunc)
		wantRuntime []string // runtime call kinds, in order
	}{
		{"rootfs fails", func(h *harness, _ context.CancelFunc) { h.rootfs.fail = boom }, nil},
		{"runtime create fails", func(h *harness, _ context.CancelFunc) { h.rt.failOn("create", boom) }, []string{"create", "delete"}},
		{"conmon fails", func(h *harness, _ context.CancelFunc) {
			h.rt.failOn("create", errors.New("conmon: exited with status 1: container create failed"))
		}, []string{"create", "delete"}},
		{"caller gone before the runtime create", func(h *harness, cancel context.CancelFunc) { cancel() }, nil},
		{"record write fails", func(h *harness, _ context.CancelFunc) { h.store.Close() }, []string{"create", "delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.setup(h, cancel)
			id, err := h.s.Create(ctx, testPod, containerConfig("app"), podConfig())
			if err == nil || id != "" {
				t.Fatalf("create = %q, %v; want an error", id, err)
			}
			if tc.name == "record write fails" {
				// Reopen what the test closed, to look.
				st, err := openStore(h)
				if err != nil {
					t.Fatal(err)
				}
				h.store = st
			}
			var kinds []string
			for _, c := range h.rt.Calls("") {
				kinds = append(kinds, strings.Fields(c)[0])
			}
			if !slices.Equal(kinds, tc.wantRuntime) {
				t.Errorf("runtime calls %q, want %q", h.rt.Calls(""), tc.wantRuntime)
			}
			if len(h.s.List()) != 0 || len(h.containerDirs()) != 0 || h.rootfs.count() != 0 || len(h.rt.list()) != 0 {
				t.Errorf("left behind: containers %d, dirs %q, mounts %d, runtime %v",
					len(h.s.List()), h.containerDirs(), h.rootfs.count(), h.rt.list())
			}
			if h.s.LayerInUse("sha256:l1") {
				t.Errorf("layer still counted in use")
			}
			// The name is free again.
			h.rootfs.fail = nil
			h.rt.failOn("create", nil)
			if tc.name != "record write fails" {
				h.create("app")
			}
		})
	}
}

func TestStart(t *testing.T) {
	h := newHarness(t)
	id := h.create("app")
	before := time.Now().UnixNano()
	if err := h.s.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c := h.get(id)
	if c.State != Running || c.StartedAt < before-int64(time.Second) || c.StartedAt > time.Now().UnixNano() {
		t.Errorf("started container: state %v startedAt %d", c.State, c.StartedAt)
	}
	if st, _ := h.stored(id); st.State != Running {
		t.Errorf("stored state %v", st.State)
	}
	// Only a created container starts.
	if err := h.s.Start(context.Background(), id); !isPrecondition(err) {
		t.Errorf("start of a running container: %v, want FailedPrecondition", err)
	}
	if err := h.s.Start(context.Background(), "nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("start of an unknown container: %v, want NotFound", err)
	}
	h.rt.exit(id, 0, false)
	h.s.handleExit(id)
	if err := h.s.Start(context.Background(), id); !isPrecondition(err) {
		t.Errorf("start of an exited container: %v, want FailedPrecondition", err)
	}
	if n := len(h.rt.Calls("start")); n != 1 {
		t.Errorf("%d runtime starts, want 1", n)
	}
}

func TestStartRuntimeFails(t *testing.T) {
	h := newHarness(t)
	id := h.create("app")
	boom := errors.New("runc start: exec format error")
	h.rt.failOn("start", boom)
	if err := h.s.Start(context.Background(), id); !errors.Is(err, boom) {
		t.Fatalf("start = %v, want the runtime's error", err)
	}
	if c := h.get(id); c.State != Created || c.StartedAt != 0 {
		t.Errorf("after a failed start: %v startedAt %d, want created", c.State, c.StartedAt)
	}
	// A start that failed but that an earlier (orphaned) start finished:
	// the container runs, which is what was asked.
	h.rt.set(id, runtime.StatusRunning, true)
	if err := h.s.Start(context.Background(), id); err != nil {
		t.Fatalf("start of a container the runtime already runs: %v", err)
	}
	if c := h.get(id); c.State != Running {
		t.Errorf("state %v, want running", c.State)
	}
}

// TestStartFifoGuard: a caller that goes away does not cut the runtime's
// start short (runc start killed mid-way leaves a running container that
// runc calls created); the start finishes and is recorded.
func TestStartFifoGuard(t *testing.T) {
	h := newHarness(t)
	id := h.create("app")
	gate := make(chan struct{})
	h.rt.startGate = gate
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.Start(ctx, id) }()
	for len(h.rt.Calls("start")) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("start returned %v when its caller went, before the runtime's start ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("start = %v", err)
	}
	if c := h.get(id); c.State != Running {
		t.Errorf("state %v, want running", c.State)
	}
}

// TestStop: the stop signal, SIGKILL after the grace period, and the
// cases with nothing to signal.
func TestStop(t *testing.T) {
	ctx := context.Background()
	t.Run("graceful", func(t *testing.T) {
		h := newHarness(t)
		h.watch()
		id := h.running("app")
		if err := h.s.Stop(ctx, id, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		c := h.get(id)
		if c.State != Exited || c.ExitCode != 128+int32(syscall.SIGTERM) || c.Reason != ReasonError || c.Pid != 0 {
			t.Errorf("stopped container: %+v", c)
		}
		if got := h.rt.Calls("kill"); !slices.Equal(got, []string{"kill " + id + " 15 false"}) {
			t.Errorf("kills %q, want one SIGTERM", got)
		}
		if c.FinishedAt < c.StartedAt {
			t.Errorf("finished %d before started %d", c.FinishedAt, c.StartedAt)
		}
	})
	t.Run("escalates to SIGKILL", func(t *testing.T) {
		h := newHarness(t)
		h.watch()
		id := h.running("app")
		h.rt.ignores[syscall.SIGTERM] = true
		began := time.Now()
		if err := h.s.Stop(ctx, id, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took < 300*time.Millisecond || took > 3*time.Second {
			t.Errorf("stop took %v, want the 300ms grace period", took)
		}
		if got := h.rt.Calls("kill"); !slices.Equal(got, []string{"kill " + id + " 15 false", "kill " + id + " 9 true"}) {
			t.Errorf("kills %q, want SIGTERM then SIGKILL to all", got)
		}
		if c := h.get(id); c.State != Exited || c.ExitCode != 137 {
			t.Errorf("stopped container: %v code %d", c.State, c.ExitCode)
		}
	})
	t.Run("stop signal of the config", func(t *testing.T) {
		h := newHarness(t)
		h.watch()
		cfg := containerConfig("app")
		cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGINT
		id, err := h.s.Create(ctx, testPod, cfg, podConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.s.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := h.s.Stop(ctx, id, time.Second); err != nil {
			t.Fatal(err)
		}
		if got := h.rt.Calls("kill"); len(got) != 1 || got[0] != "kill "+id+" 2 false" {
			t.Errorf("kills %q, want one SIGINT", got)
		}
	})
	t.Run("created: SIGKILL at once", func(t *testing.T) {
		h := newHarness(t)
		id := h.create("app")
		if err := h.s.Stop(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := h.rt.Calls("kill"); !slices.Equal(got, []string{"kill " + id + " 9 true"}) {
			t.Errorf("kills %q, want one SIGKILL", got)
		}
		if c := h.get(id); c.State != Exited || c.StartedAt != c.FinishedAt {
			t.Errorf("stopped created container: %v started %d finished %d", c.State, c.StartedAt, c.FinishedAt)
		}
	})
	t.Run("exited and unknown: nothing to do", func(t *testing.T) {
		h := newHarness(t)
		id := h.running("app")
		h.rt.exit(id, 0, false)
		h.s.handleExit(id)
		n := len(h.rt.Calls(""))
		if err := h.s.Stop(ctx, id, time.Second); err != nil {
			t.Errorf("stop of an exited container: %v", err)
		}
		if err := h.s.Stop(ctx, "nosuch", time.Second); err != nil {
			t.Errorf("stop of an unknown container: %v", err)
		}
		if got := h.rt.Calls(""); len(got) != n {
			t.Errorf("runtime calls %q after stopping exited/unknown containers", got[n:])
		}
	})
	t.Run("runtime no longer knows it", func(t *testing.T) {
		h := newHarness(t)
		id := h.running("app")
		h.rt.mu.Lock()
		delete(h.rt.status, id)
		h.rt.monitor[id] = false
		h.rt.mu.Unlock()
		if err := h.s.Stop(ctx, id, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if c := h.get(id); c.State != Exited || c.ExitCode != 255 || c.Reason != "Unknown" {
			t.Errorf("container the runtime forgot: %v %d %q", c.State, c.ExitCode, c.Reason)
		}
	})
	t.Run("caller gone", func(t *testing.T) {
		h := newHarness(t)
		id := h.running("app")
		h.rt.ignores[syscall.SIGTERM] = true
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := h.s.Stop(cctx, id, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stop = %v, want the caller's deadline", err)
		}
	})
}

// TestExitHandling: exits conmon records become exited records, once.
func TestExitHandling(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		oom    bool
		reason string
	}{
		{"completed", 0, false, ReasonCompleted},
		{"error", 3, false, ReasonError},
		{"oom killed", 137, true, ReasonOOMKilled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.watch()
			id := h.running("app")
			exited := h.s.exitChan(id)
			h.rt.exit(id, tc.code, tc.oom)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				t.Fatal("exit not recorded")
			}
			c := h.get(id)
			if c.State != Exited || c.ExitCode != int32(tc.code) || c.Reason != tc.reason || c.Pid != 0 || c.FinishedAt == 0 {
				t.Errorf("exited container: %+v", c)
			}
			if st, _ := h.stored(id); st.State != Exited || st.Reason != tc.reason {
				t.Errorf("stored: %v %q", st.State, st.Reason)
			}
			// The runtime's state goes at the exit (just after the record);
			// the rootfs stays for logs.
			eventually(t, func() bool { return len(h.rt.Calls("delete")) > 0 })
			// A plain delete: the container has stopped (see deleteStopped).
			if got := h.rt.Calls("delete"); !slices.Equal(got, []string{"delete " + id + " false"}) {
				t.Errorf("deletes %q, want one without force", got)
			}
			if !h.rootfs.IsMounted(h.s.rootfs(id)) {
				t.Errorf("rootfs gone before RemoveContainer")
			}
			// A repeated exit notice changes nothing.
			h.s.handleExit(id)
			if n := len(h.rt.Calls("delete")); n != 1 {
				t.Errorf("%d deletes after a repeated exit notice", n)
			}
		})
	}
	t.Run("unreadable exit", func(t *testing.T) {
		h := newHarness(t)
		id := h.running("app")
		h.rt.failOn("readexit", errors.New("corrupt exit file"))
		h.s.handleExit(id)
		if c := h.get(id); c.State != Running {
			t.Errorf("state %v after an unreadable exit, want running", c.State)
		}
	})
}

// TestReconcile: what a restarted berthd finds.
func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		start     bool
		whileDown func(h *harness, id string)
		state     State
		code      int32
		reason    string
	}{
		{"exited while down", true, func(h *harness, id string) { h.rt.exit(id, 1, false) }, Exited, 1, ReasonError},
		{"OOM killed while down", true, func(h *harness, id string) { h.rt.exit(id, 137, true) }, Exited, 137, ReasonOOMKilled},
		{"runtime forgot it (reboot)", true, func(h *harness, id string) {
			h.rt.mu.Lock()
			delete(h.rt.status, id)
			h.rt.mu.Unlock()
		}, Exited, 255, "Unknown"},
		{"stopped without an exit file", true, func(h *harness, id string) { h.rt.set(id, runtime.StatusStopped, false) }, Exited, 255, "Unknown"},
		{"still running", true, func(h *harness, id string) {}, Running, 0, ""},
		{"started, record missed it", false, func(h *harness, id string) { h.rt.set(id, runtime.StatusRunning, true) }, Running, 0, ""},
		{"still created", false, func(h *harness, id string) {}, Created, 0, ""},
		{"start cut after the process began", false, func(h *harness, id string) {
			h.rt.mu.Lock()
			h.rt.cutStarts = map[string]bool{id: true}
			h.rt.mu.Unlock()
		}, Running, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.create("app")
			if tc.start {
				if err := h.s.Start(context.Background(), id); err != nil {
					t.Fatal(err)
				}
			}
			tc.whileDown(h, id)
			h.s = h.open()
			c := h.get(id)
			if c.State != tc.state || c.ExitCode != tc.code || c.Reason != tc.reason {
				t.Errorf("after restart: %v code %d reason %q; want %v %d %q", c.State, c.ExitCode, c.Reason, tc.state, tc.code, tc.reason)
			}
			if tc.state == Exited {
				select {
				case <-h.s.exitChan(id):
				default:
					t.Errorf("exit channel open for an exited container")
				}
				if c.StartedAt == 0 || c.FinishedAt < c.StartedAt {
					t.Errorf("times: started %d finished %d", c.StartedAt, c.FinishedAt)
				}
			}
			if tc.state == Running && c.StartedAt == 0 {
				t.Errorf("running without a start time")
			}
			// The name stays taken.
			if _, err := h.s.Create(context.Background(), testPod, containerConfig("app"), podConfig()); err == nil {
				t.Errorf("name of a restored container reused")
			}
		})
	}
	t.Run("runtime fails", func(t *testing.T) {
		h := newHarness(t)
		h.running("app")
		// The list fails, so reconcile asks about each container, which
		// fails too.
		h.rt.failOn("list", errors.New("runc: signal: killed"))
		h.rt.failOn("state", errors.New("runc: signal: killed"))
		if _, err := New(context.Background(), h.s.cfg); err == nil {
			t.Errorf("restart with a failing runtime succeeded")
		}
	})
}

// TestReconcileOrphans: what a crash in the middle of a create left is
// removed at restart; a pod's pause process (under the pod's id) stays.
func TestReconcileOrphans(t *testing.T) {
	h := newHarness(t)
	keep := h.running("app")
	for _, d := range []string{h.s.bundleDir("half"), h.s.snapshotDir("half2"), h.s.bundleDir(testPod)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	h.rt.set("stray", runtime.StatusCreated, false)
	h.rt.set(testPod, runtime.StatusRunning, false)
	h.s = h.open()
	reaped := h.rt.Calls("reap")
	slices.Sort(reaped)
	if want := []string{"reap half", "reap half2", "reap stray"}; !slices.Equal(reaped, want) {
		t.Errorf("reaped %q, want %q", reaped, want)
	}
	dirs := h.containerDirs()
	slices.Sort(dirs)
	if want := []string{keep, keep, testPod}; !slices.Equal(dirs, want) {
		t.Errorf("dirs after restart %q, want %q", dirs, want)
	}
	if c := h.get(keep); c.State != Running {
		t.Errorf("live container %v after restart", c.State)
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(h *harness) string
	}{
		{"created", func(h *harness) string { return h.create("app") }},
		{"running (stopped first)", func(h *harness) string { return h.running("app") }},
		{"exited", func(h *harness) string {
			id := h.running("app")
			h.rt.exit(id, 0, false)
			h.s.handleExit(id)
			return id
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := tc.setup(h)
			if err := h.s.Remove(ctx, id); err != nil {
				t.Fatal(err)
			}
			h.assertGone(id)
			if h.s.LayerInUse("sha256:l1") {
				t.Errorf("layer in use after removal")
			}
			// Idempotent.
			n := len(h.rt.Calls(""))
			if err := h.s.Remove(ctx, id); err != nil {
				t.Errorf("second remove: %v", err)
			}
			if got := h.rt.Calls(""); len(got) != n {
				t.Errorf("second remove made runtime calls %q", got[n:])
			}
			// The name is free again.
			h.create("app")
		})
	}
	h := newHarness(t)
	if err := h.s.Remove(ctx, "nosuch"); err != nil {
		t.Errorf("remove of an unknown container: %v", err)
	}
}

func TestUpdateResources(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	id := h.running("app")
	res := &runtimeapiResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}
	if err := h.s.UpdateResources(ctx, id, res); err != nil {
		t.Fatal(err)
	}
	if got := h.rt.Calls("update"); !slices.Equal(got, []string{"update " + id}) {
		t.Errorf("updates %q", got)
	}
	if r := h.get(id).Resources; r.GetCpuShares() != 512 || r.GetMemoryLimitInBytes() != 64<<20 {
		t.Errorf("recorded resources %v", r)
	}
	if st, _ := h.stored(id); st.Resources.GetCpuShares() != 512 {
		t.Errorf("stored resources %v", st.Resources)
	}

	boom := errors.New("runc update: cgroup busy")
	h.rt.failOn("update", boom)
	if err := h.s.UpdateResources(ctx, id, &runtimeapiResources{CpuShares: 1024}); !errors.Is(err, boom) {
		t.Errorf("update = %v, want the runtime's error", err)
	}
	if r := h.get(id).Resources; r.GetCpuShares() != 512 {
		t.Errorf("failed update recorded: %v", r)
	}
	h.rt.failOn("update", nil)

	if err := h.s.UpdateResources(ctx, id, nil); !errdefs.IsInvalid(err) {
		t.Errorf("nil resources: %v, want InvalidArgument", err)
	}
	if err := h.s.UpdateResources(ctx, "nosuch", res); !errdefs.IsNotFound(err) {
		t.Errorf("unknown container: %v, want NotFound", err)
	}
	h.rt.exit(id, 0, false)
	h.s.handleExit(id)
	if err := h.s.UpdateResources(ctx, id, res); !isPrecondition(err) {
		t.Errorf("exited container: %v, want FailedPrecondition", err)
	}
}

func TestReopenLog(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	id := h.running("app")
	if err := h.s.ReopenLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := h.rt.Calls("reopenlog"); !slices.Equal(got, []string{"reopenlog " + id + " " + h.get(id).LogPath}) {
		t.Errorf("reopens %q", got)
	}
	if err := h.s.ReopenLog(ctx, "nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("unknown container: %v, want NotFound", err)
	}
	created := h.create("other")
	if err := h.s.ReopenLog(ctx, created); !isPrecondition(err) {
		t.Errorf("created container: %v, want FailedPrecondition", err)
	}
	cfg := containerConfig("nolog")
	cfg.LogPath = ""
	nolog, err := h.s.Create(ctx, testPod, cfg, podConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.Start(ctx, nolog); err != nil {
		t.Fatal(err)
	}
	if err := h.s.ReopenLog(ctx, nolog); !isPrecondition(err) {
		t.Errorf("container without a log: %v, want FailedPrecondition", err)
	}
	if n := len(h.rt.Calls("reopenlog")); n != 1 {
		t.Errorf("%d reopens, want 1", n)
	}
}

func TestAttachNotRunning(t *testing.T) {
	h := newHarness(t)
	id := h.create("app")
	if err := h.s.Attach(context.Background(), id, AttachOptions{}); !isPrecondition(err) {
		t.Errorf("attach to a created container: %v, want FailedPrecondition", err)
	}
	if err := h.s.Attach(context.Background(), "nosuch", AttachOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("attach to an unknown container: %v, want NotFound", err)
	}
}

// TestTargetPIDNamespace: kubectl debug --target joins a running container
// of the same pod, and nothing else.
func TestTargetPIDNamespace(t *testing.T) {
	h := newHarness(t)
	created := h.create("created")
	h.pods.pods["pod2"] = &sandbox.Sandbox{ID: "pod2", State: sandbox.Ready, RuntimeHandler: "fake"}
	target := func(id string) *runtimeapi.ContainerConfig {
		cfg := containerConfig("debug")
		cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: id}
		return cfg
	}
	for _, tc := range []struct {
		name string
		pod  string
		cfg  *runtimeapi.ContainerConfig
		want func(error) bool
	}{
		// An empty target_id is refused by spec.ValidateContainer first.
		{"unknown target", testPod, target("nosuch"), errdefs.IsNotFound},
		{"target not running", testPod, target(created), isPrecondition},
		{"target in another pod", "pod2", target(created), errdefs.IsInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.s.targetPIDNamespace(tc.pod, tc.cfg); !tc.want(err) {
				t.Errorf("err = %v", err)
			}
		})
	}
	if ns, err := h.s.targetPIDNamespace(testPod, containerConfig("x")); ns != "" || err != nil {
		t.Errorf("container with its own PID namespace: %q, %v", ns, err)
	}
}

// TestCreateRetryGetsUndelivered: a create whose caller went away after
// the runtime made the container is handed to the caller's retry, instead
// of the retry failing on the name.
func TestCreateRetryGetsUndelivered(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.rt.afterCreate = cancel
	first, err := h.s.Create(ctx, testPod, containerConfig("app"), podConfig())
	if err != nil {
		t.Fatal(err)
	}
	h.rt.afterCreate = nil
	again, err := h.s.Create(context.Background(), testPod, containerConfig("app"), podConfig())
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again != first || len(h.s.List()) != 1 || len(h.rt.Calls("create")) != 1 {
		t.Errorf("retry got %q (first %q); %d containers, %d runtime creates; want the first, once",
			again, first, len(h.s.List()), len(h.rt.Calls("create")))
	}
}

// runningAfterAll refuses a delete without force, as runc does for a
// container that still runs.
type runningAfterAll struct{ *fakeHandler }

func (r runningAfterAll) Delete(ctx context.Context, id string, force bool) error {
	if !force {
		r.fakeHandler.call("delete", id, force)
		return errors.New("cannot delete container that is not stopped: running")
	}
	return r.fakeHandler.Delete(ctx, id, force)
}

// TestDeleteStopped: a stopped container is deleted without force (runc
// 1.2+ sleeps 100 ms in a forced delete); one the runtime says still runs
// is then deleted with force.
func TestDeleteStopped(t *testing.T) {
	ctx := context.Background()
	h := newFakeHandler()
	if err := deleteStopped(ctx, h, "a"); err != nil || !slices.Equal(h.Calls("delete"), []string{"delete a false"}) {
		t.Errorf("stopped: %v, calls %q", err, h.Calls("delete"))
	}
	r := runningAfterAll{newFakeHandler()}
	if err := deleteStopped(ctx, r, "b"); err != nil || !slices.Equal(r.Calls("delete"), []string{"delete b false", "delete b true"}) {
		t.Errorf("running: %v, calls %q", err, r.Calls("delete"))
	}
}
