package pod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/store"
)

// countingHandler is a runtime handler that runs nothing and counts the
// calls made to it, by method. Containers "run" until killed; a kill
// records their exit and reports it as a monitor would. Methods it does
// not implement panic (the embedded nil Handler), so a path that makes an
// unexpected kind of call shows.
type countingHandler struct {
	runtime.Handler
	podSandbox bool // Features().PodSandbox, as gVisor's

	mu     sync.Mutex
	calls  map[string]int
	status map[string]string // id -> OCI status; absent: unknown to the runtime
	exits  map[string]runtime.Exit
	onExit func(id string)
	reaped []string // ids ReapOrphan was asked to remove
	pauser *testPauser
}

func newCountingHandler() *countingHandler {
	return &countingHandler{calls: map[string]int{}, status: map[string]string{}, exits: map[string]runtime.Exit{}, pauser: &testPauser{}}
}

// testPauser stands in for the pause processes berthd starts itself
// (sandbox.Pauser): the test's own process is each one, its PID namespace
// the one pinned.
type testPauser struct {
	mu      sync.Mutex
	started sandbox.PauseProc // the last
	killed  map[sandbox.PauseProc]bool
}

func (p *testPauser) Start(ctx context.Context, req sandbox.PauseRequest) (sandbox.PauseProc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = sandbox.PauseProc{PID: os.Getpid(), StartTime: p.started.StartTime + 1}
	return p.started, nil
}

func (p *testPauser) Kill(pp sandbox.PauseProc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed == nil {
		p.killed = map[sandbox.PauseProc]bool{}
	}
	p.killed[pp] = true
	return nil
}

func (p *testPauser) Alive(pp sandbox.PauseProc) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pp.StartTime != 0 && pp.StartTime <= p.started.StartTime && !p.killed[pp]
}

func (p *testPauser) Find(string) map[string][]sandbox.PauseProc { return nil }

func (p *testPauser) Move(sandbox.PauseProc, string) error { return nil }

func (h *countingHandler) count(m string) {
	h.mu.Lock()
	h.calls[m]++
	h.mu.Unlock()
}

// runtimeCalls are the calls that run the runtime's binary (or conmon):
// what teardown must not repeat. The others read or remove files.
var runtimeCalls = []string{"Create", "CreateUnmonitored", "Start", "Kill", "Delete", "State", "List"}

func (h *countingHandler) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, m := range runtimeCalls {
		if n := h.calls[m]; n > 0 {
			out[m] = n
		}
	}
	return out
}

func (h *countingHandler) allCounts() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var parts []string
	for m, n := range h.calls {
		parts = append(parts, fmt.Sprintf("%s=%d", m, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (h *countingHandler) Name() string { return "counting" }
func (h *countingHandler) Features() runtime.Features {
	return runtime.Features{PodSandbox: h.podSandbox}
}
func (h *countingHandler) SpecSettings() runtime.SpecSettings { return runtime.SpecSettings{} }

func (h *countingHandler) Create(ctx context.Context, o runtime.CreateOptions) (runtime.Process, error) {
	h.count("Create")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[o.ID] = runtime.StatusCreated
	return runtime.Process{Pid: os.Getpid()}, nil
}

func (h *countingHandler) CreateUnmonitored(ctx context.Context, id, bundle string) error {
	h.count("CreateUnmonitored")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[id] = runtime.StatusCreated
	return nil
}

func (h *countingHandler) Start(ctx context.Context, id, dir string) error {
	h.count("Start")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status[id] != runtime.StatusCreated {
		return fmt.Errorf("start %s: not created", id)
	}
	h.status[id] = runtime.StatusRunning
	return nil
}

func (h *countingHandler) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	h.count("Kill")
	h.mu.Lock()
	st, ok := h.status[id]
	if !ok {
		h.mu.Unlock()
		return errdefs.NotFound("kill " + id + ": container does not exist")
	}
	if st == runtime.StatusStopped || sig != syscall.SIGKILL {
		h.mu.Unlock()
		return nil
	}
	h.status[id] = runtime.StatusStopped
	h.exits[id] = runtime.Exit{Code: 137, At: time.Now()}
	fn := h.onExit
	h.mu.Unlock()
	if fn != nil {
		fn(id)
	}
	return nil
}

func (h *countingHandler) Delete(ctx context.Context, id string, force bool) error {
	h.count("Delete")
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.status, id)
	return nil
}

func (h *countingHandler) State(ctx context.Context, id string) (*runtime.State, error) {
	h.count("State")
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.status[id]
	if !ok {
		return nil, errdefs.NotFound("state " + id + ": container does not exist")
	}
	// The pause process's PID namespace is pinned from /proc/<pid>/ns/pid:
	// the test's own will do.
	return &runtime.State{ID: id, Status: st, Pid: os.Getpid()}, nil
}

func (h *countingHandler) List(ctx context.Context) ([]runtime.State, error) {
	h.count("List")
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []runtime.State
	for id, st := range h.status {
		out = append(out, runtime.State{ID: id, Status: st})
	}
	return out, nil
}

func (h *countingHandler) ReadExit(id, dir string) (runtime.Exit, bool, error) {
	h.count("ReadExit")
	h.mu.Lock()
	defer h.mu.Unlock()
	ex, ok := h.exits[id]
	return ex, ok, nil
}

func (h *countingHandler) RemoveExit(id string) error {
	h.count("RemoveExit")
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.exits, id)
	return nil
}

// MonitorAlive is not counted: the container service's periodic monitor
// check calls it too. A container the runtime runs has its monitor.
func (h *countingHandler) MonitorAlive(dir string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.status[filepath.Base(dir)]
	return 0, st == runtime.StatusCreated || st == runtime.StatusRunning
}

func (h *countingHandler) PendingStarts() []int { return nil }

// countingRuntimes serves the one handler under every name.
type countingRuntimes struct{ h *countingHandler }

func (r countingRuntimes) Handler(name string) (runtime.Handler, error) { return r.h, nil }
func (r countingRuntimes) Handlers() []runtime.Handler                  { return []runtime.Handler{r.h} }
func (r countingRuntimes) WatchExits(ctx context.Context, fn func(id string)) error {
	r.h.mu.Lock()
	r.h.onExit = fn
	r.h.mu.Unlock()
	<-ctx.Done()
	return nil
}
func (r countingRuntimes) ReapOrphan(ctx context.Context, id, bundleDir string) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.reaped = append(r.h.reaped, id)
	delete(r.h.status, id)
}

const testImage = "example.com/test:1"

// newTestPods builds the real sandbox, container and image services over a
// temp dir and the counting handler: pod files, namespaces and the rootfs
// overlay are real (so it needs root), the runtime is not.
func newTestPods(t *testing.T, h *countingHandler, opts ...func(*Config)) *Service {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: pods pin namespaces and mount tmpfs and overlayfs")
	}
	dir := t.TempDir()
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	st, err := store.Open(filepath.Join(dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// An image record and its one layer dir, as a pull leaves them.
	hex := strings.Repeat("ab", 32)
	if err := os.MkdirAll(filepath.Join(root, "layers", hex, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := &image.Image{ID: "sha256:" + strings.Repeat("cd", 32), RepoTags: []string{testImage}, ChainIDs: []string{"sha256:" + hex}}
	img.Config.Config.Cmd = []string{"/bin/true"}
	if err := st.Put(store.Images, img.ID, img); err != nil {
		t.Fatal(err)
	}
	images, err := image.New(root, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { images.Close() })
	pause := filepath.Join(dir, "berth-pause")
	if err := os.WriteFile(pause, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	rts := countingRuntimes{h}
	sandboxes, err := sandbox.New(sandbox.Config{
		Store: st, StateDir: state, DefaultCgroupParent: "/berth-pod-test", Runtimes: rts,
		PauseBinary: pause, CgroupDriver: "cgroupfs", Pauser: h.pauser,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	containers, err := container.New(ctx, container.Config{
		Store: st, Root: root, StateDir: state, Runtimes: rts,
		Sandboxes: sandboxes, Images: images, CgroupDriver: "cgroupfs",
	})
	if err != nil {
		t.Fatal(err)
	}
	go containers.Watch(ctx)
	cfg := Config{Sandboxes: sandboxes, Containers: containers, Images: images}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The exit watcher is registered before the first container runs.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		ready := h.onExit != nil
		h.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("exit watcher never started")
		}
	}
	return s
}

func podConfig(name string, pid runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname: name,
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			// Host network: the test makes no network; net and UTS are the host's.
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: pid},
		}},
	}
}

// TestPodRuntimeCalls counts the runtime calls of a pod's life with one
// container (RunPodSandbox, CreateContainer, StartContainer,
// StopPodSandbox, RemovePodSandbox): each is needed, none is repeated.
func TestPodRuntimeCalls(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pid        runtimeapi.NamespaceMode
		podSandbox bool
		want       map[string]int
	}{
		{
			// No pause process: the container's create, start, SIGKILL and
			// one delete once it exited.
			name: "no pause", pid: runtimeapi.NamespaceMode_CONTAINER,
			want: map[string]int{"Create": 1, "Start": 1, "Kill": 1, "Delete": 1},
		},
		{
			// Shared PID namespace: berthd starts and kills the pause
			// process itself, so no runtime call more.
			name: "shared pid", pid: runtimeapi.NamespaceMode_POD,
			want: map[string]int{"Create": 1, "Start": 1, "Kill": 1, "Delete": 1},
		},
		{
			// A pod-sandbox runtime (gVisor): the pause process is the
			// sandbox; nothing to pin, so no state query.
			name: "pod sandbox runtime", pid: runtimeapi.NamespaceMode_CONTAINER, podSandbox: true,
			want: map[string]int{"Create": 1, "CreateUnmonitored": 1, "Start": 2, "Kill": 2, "Delete": 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCountingHandler()
			h.podSandbox = tc.podSandbox
			s := newTestPods(t, h)
			ctx := context.Background()
			before := h.counts()
			if len(before) > 1 || before["List"] > 1 {
				t.Fatalf("runtime calls at start: %v", before)
			}
			h.mu.Lock()
			h.calls = map[string]int{}
			h.mu.Unlock()

			podCfg := podConfig("p-"+strings.ReplaceAll(tc.name, " ", "-"), tc.pid)
			podID, err := s.RunPodSandbox(ctx, podCfg, "")
			if err != nil {
				t.Fatal(err)
			}
			// A failed test leaves no mounts behind.
			t.Cleanup(func() { s.RemovePodSandbox(context.Background(), podID) })
			ctrID, err := s.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Image:    &runtimeapi.ImageSpec{Image: testImage},
				Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: tc.pid},
				}},
			}, podCfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.StartContainer(ctx, ctrID); err != nil {
				t.Fatal(err)
			}
			if err := s.StopPodSandbox(ctx, podID); err != nil {
				t.Fatal(err)
			}
			if err := s.RemovePodSandbox(ctx, podID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.sandboxes.Get(podID); !errdefs.IsNotFound(err) {
				t.Errorf("pod after RemovePodSandbox: %v", err)
			}
			if _, err := s.containers.Get(ctrID); !errdefs.IsNotFound(err) {
				t.Errorf("container after RemovePodSandbox: %v", err)
			}
			got := h.counts()
			t.Logf("calls: %s", h.allCounts())
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("runtime calls = %v, want %v", got, tc.want)
			}
			// Both again: idempotent, and the records say nothing is left
			// for the runtime to do.
			h.mu.Lock()
			h.calls = map[string]int{}
			h.mu.Unlock()
			if err := s.StopPodSandbox(ctx, podID); err != nil {
				t.Fatal(err)
			}
			if err := s.RemovePodSandbox(ctx, podID); err != nil {
				t.Fatal(err)
			}
			if got := h.counts(); len(got) != 0 {
				t.Errorf("repeated stop and remove made runtime calls: %v", got)
			}
		})
	}
}

// TestOrphanPolicy: at start, runtime state that is neither a container's
// nor a pod's pause process is reaped; a running pod's pause process (under
// the pod's id) and its containers are left alone.
func TestOrphanPolicy(t *testing.T) {
	h := newCountingHandler()
	s := newTestPods(t, h)
	ctx := context.Background()
	podCfg := podConfig("orphans", runtimeapi.NamespaceMode_POD)
	podID, err := s.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.RemovePodSandbox(context.Background(), podID) })
	ctrID, err := s.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: testImage},
	}, podCfg)
	if err != nil {
		t.Fatal(err)
	}
	// What a crash mid-create leaves: runtime state without a record.
	h.mu.Lock()
	h.status["left-by-a-crash"] = runtime.StatusCreated
	h.mu.Unlock()

	if _, err := New(ctx, Config{Sandboxes: s.sandboxes, Containers: s.containers, Images: s.images}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	reaped := fmt.Sprint(h.reaped)
	_, ctrKept := h.status[ctrID]
	h.mu.Unlock()
	pauseKept := h.pauser.Alive(h.pauser.started)
	if reaped != "[left-by-a-crash]" {
		t.Errorf("reaped %s, want only the runtime state no record owns", reaped)
	}
	if !pauseKept || !ctrKept {
		t.Errorf("pause process kept: %v, container kept: %v", pauseKept, ctrKept)
	}
}
