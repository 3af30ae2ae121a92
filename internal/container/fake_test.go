package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/snapshot"
	"github.com/berth-project/berth/internal/store"
	"github.com/berth-project/berth/internal/usernsdir"
)

// fakeHandler is a runtime handler that plays runc under conmon in memory:
// it records every call, fails the operations a test scripts, and records
// an exit (as conmon would) when a signal kills a container. Calls it does
// not implement panic (the embedded nil Handler), so a test shows which
// runtime calls a path makes.
type fakeHandler struct {
	runtime.Handler
	mu      sync.Mutex
	status  map[string]string       // id -> OCI status; absent: unknown to the runtime
	monitor map[string]bool         // id -> conmon alive
	exits   map[string]runtime.Exit // exits "conmon" recorded
	ignores map[syscall.Signal]bool // signals containers survive
	fail    map[string]error        // op name -> error it returns
	calls   []string
	pid     int
	// startGate, when set, holds Start until it is closed (a hung runtime
	// start); the context passed to Start still ends it.
	startGate chan struct{}
	exitc     chan string // exits for WatchExits
	// afterCreate, when set, runs after each successful Create.
	afterCreate func()
	// cutStarts are containers whose start a kill cut short after their
	// process began: the runtime says created until FinishCutStart.
	cutStarts map[string]bool
}

func (h *fakeHandler) FinishCutStart(id string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.cutStarts[id] {
		return false, nil
	}
	delete(h.cutStarts, id)
	h.status[id] = runtime.StatusRunning
	return true, nil
}

func newFakeHandler() *fakeHandler {
	return &fakeHandler{
		status: map[string]string{}, monitor: map[string]bool{}, exits: map[string]runtime.Exit{},
		ignores: map[syscall.Signal]bool{}, fail: map[string]error{}, exitc: make(chan string, 64),
	}
}

func (h *fakeHandler) Name() string                       { return "fake" }
func (h *fakeHandler) Features() runtime.Features         { return runtime.Features{UserNamespaces: true} }
func (h *fakeHandler) SpecSettings() runtime.SpecSettings { return runtime.SpecSettings{} }
func (h *fakeHandler) PendingStarts() []int               { return nil }
func (h *fakeHandler) List(context.Context) ([]runtime.State, error) {
	h.mu.Lock()
	err := h.fail["list"]
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return h.list(), nil
}

func (h *fakeHandler) list() []runtime.State {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []runtime.State
	for id, st := range h.status {
		out = append(out, runtime.State{ID: id, Status: st})
	}
	return out
}

func (h *fakeHandler) set(id, status string, monitorAlive bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[id] = status
	h.monitor[id] = monitorAlive
}

// failOn makes op fail with err (nil: succeed again).
func (h *fakeHandler) failOn(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.fail, op)
	} else {
		h.fail[op] = err
	}
}

// call records a call and returns the error scripted for its op.
func (h *fakeHandler) call(op, id string, args ...any) error {
	h.calls = append(h.calls, strings.TrimSpace(fmt.Sprintln(append([]any{op, id}, args...)...)))
	return h.fail[op]
}

// Calls returns the calls so far whose text starts with prefix.
func (h *fakeHandler) Calls(prefix string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// exit ends container id as conmon would see it: exit recorded, conmon
// gone, the runtime reporting it stopped. Called with h.mu held.
func (h *fakeHandler) exitLocked(id string, code int, oom bool) {
	h.status[id] = runtime.StatusStopped
	h.monitor[id] = false
	h.exits[id] = runtime.Exit{Code: code, At: time.Now(), OOM: oom}
	h.exitc <- id
}

// exit ends container id on its own (its process finished or was OOM killed).
func (h *fakeHandler) exit(id string, code int, oom bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.exitLocked(id, code, oom)
}

func (h *fakeHandler) Create(ctx context.Context, o runtime.CreateOptions) (runtime.Process, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.call("create", o.ID); err != nil {
		return runtime.Process{}, err
	}
	if _, err := os.Stat(filepath.Join(o.BundleDir, "config.json")); err != nil {
		return runtime.Process{}, fmt.Errorf("fake create: no spec: %w", err)
	}
	h.status[o.ID] = runtime.StatusCreated
	h.monitor[o.ID] = true
	h.pid++
	if h.afterCreate != nil {
		h.afterCreate()
	}
	return runtime.Process{Pid: 1000 + h.pid, ConmonPid: 2000 + h.pid}, nil
}

func (h *fakeHandler) Start(ctx context.Context, id, dir string) error {
	h.mu.Lock()
	err := h.call("start", id)
	gate := h.startGate
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status[id] != runtime.StatusCreated {
		return fmt.Errorf("fake start %s: container is %q, not created", id, h.status[id])
	}
	h.status[id] = runtime.StatusRunning
	return nil
}

func (h *fakeHandler) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.call("kill", id, int(sig), all); err != nil {
		return err
	}
	st, ok := h.status[id]
	if !ok {
		return errdefs.NotFound("fake kill " + id + ": container does not exist")
	}
	if st == runtime.StatusStopped || h.ignores[sig] {
		return nil
	}
	h.exitLocked(id, 128+int(sig), false)
	return nil
}

func (h *fakeHandler) Delete(ctx context.Context, id string, force bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.call("delete", id, force); err != nil {
		return err
	}
	delete(h.status, id)
	return nil
}

func (h *fakeHandler) State(ctx context.Context, id string) (*runtime.State, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fail["state"]; err != nil {
		return nil, err
	}
	st, ok := h.status[id]
	if !ok {
		return nil, errdefs.NotFound("fake state " + id + ": container does not exist")
	}
	return &runtime.State{ID: id, Status: st}, nil
}

func (h *fakeHandler) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.call("update", id)
}

func (h *fakeHandler) ReopenLog(ctx context.Context, dir, logPath string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.call("reopenlog", filepath.Base(dir), logPath)
}

func (h *fakeHandler) ReadExit(id, dir string) (runtime.Exit, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fail["readexit"]; err != nil {
		return runtime.Exit{}, false, err
	}
	ex, ok := h.exits[id]
	return ex, ok, nil
}

func (h *fakeHandler) RemoveExit(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.exits, id)
	return nil
}

func (h *fakeHandler) MonitorAlive(dir string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, alive := range h.monitor {
		if alive && dir != "" && filepath.Base(dir) == id {
			return 0, true // no pid: cleanup must not kill anything real
		}
	}
	return 0, false
}

// fakeRuntimes serves one fake handler under every name but "missing".
type fakeRuntimes struct{ h *fakeHandler }

func (r fakeRuntimes) Handler(name string) (runtime.Handler, error) {
	if name == "missing" {
		return nil, errdefs.Invalid("no runtime handler " + name)
	}
	return r.h, nil
}
func (r fakeRuntimes) Handlers() []runtime.Handler { return []runtime.Handler{r.h} }
func (r fakeRuntimes) WatchExits(ctx context.Context, fn func(id string)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-r.h.exitc:
			fn(id)
		}
	}
}
func (r fakeRuntimes) ReapOrphan(ctx context.Context, id, bundleDir string) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.call("reap", id)
	delete(r.h.status, id)
}

// fakeSandboxes holds pods by id.
type fakeSandboxes struct {
	mu   sync.Mutex
	pods map[string]*sandbox.Sandbox
}

func (f *fakeSandboxes) Get(id string) (*sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pods[id]; ok {
		return p, nil
	}
	return nil, errdefs.NotFound("pod sandbox " + id + " not found")
}

// fakeImages holds one image, "busybox".
type fakeImages struct{ img *image.Image }

func (f fakeImages) Get(ref string) (*image.Image, error) {
	if ref != "busybox" {
		return nil, errdefs.NotFound("image " + ref + " not found")
	}
	return f.img, nil
}
func (f fakeImages) LayerDirs(img *image.Image) []string { return []string{"/layers/1"} }

// HoldImage is Get; Unhold does nothing.
func (f fakeImages) HoldImage(ref, holder string) (*image.Image, error) { return f.Get(ref) }
func (f fakeImages) Unhold(holder string)                               {}

// LeaseImage is Get with a nil lease (releasing one is a no-op).
func (f fakeImages) LeaseImage(ref string) (*image.Image, *image.Lease, error) {
	img, err := f.Get(ref)
	return img, nil, err
}

// fakeRootfs makes root filesystems as plain dirs and records the mounted ones.
type fakeRootfs struct {
	mu      sync.Mutex
	mounted map[string]bool
	fail    error
}

func (f *fakeRootfs) MountImage(target string, lowers []string, idmap *snapshot.IDMap, scratch string) error {
	return os.MkdirAll(target, 0o755)
}

func (f *fakeRootfs) Unmount(target string) error { return nil }

func (f *fakeRootfs) Prepare(dir, target string, lowers []string, idmap *snapshot.IDMap) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	f.mounted[target] = true
	return nil
}

func (f *fakeRootfs) Remove(dir, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, target)
	return os.RemoveAll(dir)
}

func (f *fakeRootfs) IsMounted(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mounted[path]
}

func (f *fakeRootfs) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.mounted)
}

// harness is a container service over fakes and a real store in a temp dir,
// with one ready pod, "pod1".
type harness struct {
	t      *testing.T
	dir    string
	store  *store.Store
	rt     *fakeHandler
	pods   *fakeSandboxes
	rootfs *fakeRootfs
	s      *Service
	userns usernsdir.Dir
}

const testPod = "pod1"

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, dir: dir, store: st, rt: newFakeHandler(),
		pods:   &fakeSandboxes{pods: map[string]*sandbox.Sandbox{}},
		rootfs: &fakeRootfs{mounted: map[string]bool{}},
	}
	t.Cleanup(func() { h.store.Close() })
	h.pods.pods[testPod] = &sandbox.Sandbox{
		ID: testPod, Name: "p", Namespace: "ns", UID: "u1", State: sandbox.Ready,
		RuntimeHandler: "fake", LogDirectory: filepath.Join(dir, "logs"),
		Config: &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u1"},
			LogDirectory: filepath.Join(dir, "logs"),
		},
		Namespaces: map[string]string{
			"net": filepath.Join(dir, "netns"), "ipc": filepath.Join(dir, "ipcns"), "uts": filepath.Join(dir, "utsns"),
		},
	}
	h.s = h.open()
	return h
}

// open starts a service over the harness's store and fakes, as berthd does
// at start (after a crash too).
func (h *harness) open() *Service {
	h.t.Helper()
	s, err := New(context.Background(), Config{
		Store: h.store, Root: filepath.Join(h.dir, "root"), StateDir: filepath.Join(h.dir, "state"),
		Runtimes: fakeRuntimes{h.rt}, Sandboxes: h.pods, Images: fakeImages{&image.Image{ID: "sha256:abc", ChainIDs: []string{"sha256:l1"}}},
		CgroupDriver: "cgroupfs", rootfs: h.rootfs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		UsernsDir: h.userns,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	// The pod layer's orphan policy: ids of pods are theirs.
	isPod := func(id string) bool { _, err := h.pods.Get(id); return err == nil }
	if err := s.RemoveOrphans(context.Background(), isPod); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// watch runs the service's exit watcher until the test ends.
func (h *harness) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.s.Watch(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
}

func containerConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"/bin/sh"},
		LogPath:  name + "/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

func podConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u1"},
	}
}

// create makes container name in the pod and fails the test if it cannot.
func (h *harness) create(name string) string {
	h.t.Helper()
	id, err := h.s.Create(context.Background(), testPod, containerConfig(name), podConfig())
	if err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	return id
}

// running makes and starts container name.
func (h *harness) running(name string) string {
	h.t.Helper()
	id := h.create(name)
	if err := h.s.Start(context.Background(), id); err != nil {
		h.t.Fatalf("start %s: %v", name, err)
	}
	return id
}

func (h *harness) get(id string) *Container {
	h.t.Helper()
	c, err := h.s.Get(id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	return c
}

// stored is the container's record as the store has it; ok false if none.
func (h *harness) stored(id string) (Container, bool) {
	h.t.Helper()
	tbl, err := openTable(h.store, h.s.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	rows, err := tbl.Load(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range rows {
		if r.ID == id {
			c, err := fromRecord(r.ID, r.Meta, r.Status)
			if err != nil {
				h.t.Fatal(err)
			}
			return *c, true
		}
	}
	return Container{}, false
}

// assertGone checks that nothing of container id is left: record, bundle,
// writable layer, runtime state, mount.
func (h *harness) assertGone(id string) {
	h.t.Helper()
	if _, err := h.s.Get(id); !errdefs.IsNotFound(err) {
		h.t.Errorf("container %s still listed (%v)", id, err)
	}
	if _, ok := h.stored(id); ok {
		h.t.Errorf("container %s still stored", id)
	}
	for _, d := range []string{h.s.bundleDir(id), h.s.snapshotDir(id)} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			h.t.Errorf("%s left behind (%v)", d, err)
		}
	}
	if _, err := h.rt.State(context.Background(), id); !errdefs.IsNotFound(err) {
		h.t.Errorf("runtime still knows container %s (%v)", id, err)
	}
	if h.rootfs.IsMounted(h.s.rootfs(id)) {
		h.t.Errorf("rootfs of %s still mounted", id)
	}
}

// onlyContainerDirs lists the entries of the service's container dirs.
func (h *harness) containerDirs() []string {
	var out []string
	for _, d := range []string{filepath.Join(h.dir, "state", "containers"), filepath.Join(h.dir, "root", "containers")} {
		es, _ := os.ReadDir(d)
		for _, e := range es {
			out = append(out, e.Name())
		}
	}
	return out
}

type runtimeapiResources = runtimeapi.LinuxContainerResources

func openStore(h *harness) (*store.Store, error) {
	return store.Open(filepath.Join(h.dir, "berth.db"))
}

func isPrecondition(err error) bool { return errors.Is(err, errdefs.ErrFailedPrecondition) }

// eventually waits up to 5s for cond.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// TestUserNSRootfs: a container of a pod in a user namespace gets its
// rootfs mount point in the userns dir, reachable by the pod's root group
// only, while its bundle stays root-only; Remove takes the entry away, and
// so does the clean-up of one left by a crash.
func TestUserNSRootfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	const podRoot = 65536 * 7
	h := newHarness(t)
	h.userns = usernsdir.New(filepath.Join(h.dir, "state-userns"))
	if err := h.userns.Init(); err != nil {
		t.Fatal(err)
	}
	h.s = h.open()
	pod := h.pods.pods[testPod]
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: podRoot, Length: 65536}}
	pod.Config.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{
			Pid:           runtimeapi.NamespaceMode_CONTAINER,
			UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m},
		},
	}}
	pod.Namespaces["user"] = filepath.Join(h.dir, "userns")

	id := h.create("c")
	rootfs := filepath.Join(h.dir, "state-userns", id, "rootfs")
	if !h.rootfs.IsMounted(rootfs) {
		t.Fatalf("rootfs not mounted at %s (mounted: %v)", rootfs, h.rootfs.mounted)
	}
	fi, err := os.Stat(filepath.Dir(rootfs))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o710 || st.Uid != 0 || st.Gid != podRoot {
		t.Errorf("entry %v %d:%d, want 0710 root:%d", fi.Mode(), st.Uid, st.Gid, podRoot)
	}
	bundle := filepath.Join(h.dir, "state", "containers", id)
	if fi, err := os.Stat(bundle); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("bundle %s: %v, %v; want 0700", bundle, fi.Mode(), err)
	}
	if err := h.s.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if h.userns.Has(id) {
		t.Errorf("entry of removed container %s is still there", id)
	}

	// A crash left a bundle and an entry, and no record.
	const stray = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := os.MkdirAll(filepath.Join(h.dir, "state", "containers", stray), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := h.userns.Make(stray, podRoot, podRoot, false); err != nil {
		t.Fatal(err)
	}
	h.s = h.open()
	if h.userns.Has(stray) {
		t.Error("orphan's entry survived the start-up clean-up")
	}
}
