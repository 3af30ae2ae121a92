package container

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
)

// fakeHandler is a runtime handler whose container states and monitor
// liveness the test sets. Calls it does not implement panic (the embedded
// nil Handler), so a test shows which runtime calls a path makes.
type fakeHandler struct {
	runtime.Handler
	mu      sync.Mutex
	status  map[string]string // id -> OCI status; absent: unknown to the runtime
	monitor map[string]bool   // id -> conmon alive
}

func newFakeHandler() *fakeHandler {
	return &fakeHandler{status: map[string]string{}, monitor: map[string]bool{}}
}

func (h *fakeHandler) Name() string { return "fake" }

func (h *fakeHandler) set(id, status string, monitorAlive bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[id] = status
	h.monitor[id] = monitorAlive
}

func (h *fakeHandler) State(ctx context.Context, id string) (*runtime.State, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.status[id]
	if !ok {
		return nil, errdefs.NotFound("fake state " + id + ": container does not exist")
	}
	return &runtime.State{ID: id, Status: st}, nil
}

func (h *fakeHandler) List(ctx context.Context) ([]runtime.State, error) { return nil, nil }

func (h *fakeHandler) PendingStarts() []int { return nil }

func (h *fakeHandler) ReadExit(id, dir string) (runtime.Exit, bool, error) {
	return runtime.Exit{}, false, nil
}

func (h *fakeHandler) MonitorAlive(dir string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, alive := range h.monitor {
		if alive && dir != "" && filepath.Base(dir) == id {
			return 1, true
		}
	}
	return 0, false
}

// fakeRuntimes serves one fake handler under every name.
type fakeRuntimes struct{ h *fakeHandler }

func (r fakeRuntimes) Handler(name string) (runtime.Handler, error) { return r.h, nil }
func (r fakeRuntimes) Handlers() []runtime.Handler                  { return []runtime.Handler{r.h} }
func (r fakeRuntimes) WatchExits(ctx context.Context, fn func(id string)) error {
	<-ctx.Done()
	return nil
}
func (r fakeRuntimes) ReapOrphan(ctx context.Context, id, bundleDir string) {}
