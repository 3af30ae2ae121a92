package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/store"
)

// recorder records calls and returns the errors a test scripts per call kind.
type recorder struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error
}

func (r *recorder) call(op string, args ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, strings.TrimSpace(fmt.Sprintln(append([]any{op}, args...)...)))
	return r.fail[op]
}

func (r *recorder) failOn(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = map[string]error{}
	}
	if err == nil {
		delete(r.fail, op)
	} else {
		r.fail[op] = err
	}
}

// Calls returns the recorded calls of kind op ("" for all).
func (r *recorder) Calls(op string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if op == "" || strings.Fields(c)[0] == op {
			out = append(out, c)
		}
	}
	return out
}

// fakeMounts keeps the pod's mounts in memory: pinned namespaces are empty
// files, tmpfs mounts plain dirs, and isMountPoint says what is "mounted".
type fakeMounts struct {
	recorder
	mounted map[string]bool
}

func (m *fakeMounts) mount(op, path string, dir bool) error {
	if err := m.call(op, filepath.Base(path)); err != nil {
		return err
	}
	var err error
	if dir {
		err = os.MkdirAll(path, 0o755)
	} else {
		err = os.WriteFile(path, nil, 0o444)
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.mounted[path] = true
	m.mu.Unlock()
	return nil
}

func (m *fakeMounts) unmount(op, path string) error {
	if err := m.call(op, filepath.Base(path)); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.mounted, path)
	m.mu.Unlock()
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	return nil
}

func (m *fakeMounts) pinNamespaces(dir, hostname string, kinds []nsKind, userns *userNS) (map[string]string, error) {
	paths := map[string]string{}
	if userns != nil {
		kinds = append([]nsKind{{name: "user"}}, kinds...)
	}
	for _, k := range kinds {
		p := filepath.Join(dir, k.name+"ns")
		if err := m.mount("pin", p, false); err != nil {
			m.unpinNamespaces(paths)
			return nil, err
		}
		paths[k.name] = p
	}
	return paths, nil
}

func (m *fakeMounts) unpinNamespaces(paths map[string]string) error {
	for _, p := range paths {
		if err := m.unmount("unpin", p); err != nil {
			return err
		}
	}
	return nil
}

func (m *fakeMounts) bindNamespace(source, target string) error {
	return m.mount("bind", target, false)
}
func (m *fakeMounts) unmountAndRemove(path string) error       { return m.unmount("unbind", path) }
func (m *fakeMounts) mountShm(target string) error             { return m.mount("shm", target, true) }
func (m *fakeMounts) unmountShm(target string) error           { return m.unmount("unshm", target) }
func (m *fakeMounts) mountPodFiles(target string, n int) error { return m.mount("files", target, true) }
func (m *fakeMounts) unmountPodFiles(target string) error      { return m.unmount("unfiles", target) }
func (m *fakeMounts) rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.mounted {
		if strings.HasPrefix(p, from+"/") {
			delete(m.mounted, p)
			m.mounted[to+p[len(from):]] = true
		}
	}
	return nil
}

// setHostname records the hostname in a file beside the pin.
func (m *fakeMounts) setHostname(uts, hostname string) error {
	if err := m.call("hostname", filepath.Base(filepath.Dir(uts))); err != nil {
		return err
	}
	if !m.isMountPoint(uts) {
		return fmt.Errorf("uts namespace %s not pinned", uts)
	}
	return os.WriteFile(uts+".hostname", []byte(hostname), 0o644)
}

func (m *fakeMounts) isMountPoint(path string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mounted[path]
}

func (m *fakeMounts) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mounted)
}

// fakeNetwork is CNI: Setup hands out an IP, Teardown forgets it. With
// prepare set it is a PreparableNetwork for pods without host ports.
type fakeNetwork struct {
	recorder
	attached map[string]bool
	prepare  bool
}

func (n *fakeNetwork) Preparable(cfg *runtimeapi.PodSandboxConfig) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() > 0 {
			return false
		}
	}
	return n.prepare
}

func (n *fakeNetwork) Prepare(ctx context.Context, id, netns string) ([]string, error) {
	return n.Setup(ctx, &Sandbox{ID: id, Namespaces: map[string]string{"net": netns}}, &runtimeapi.PodSandboxConfig{})
}

func (n *fakeNetwork) Unprepare(id, netns string) error {
	return n.Teardown(context.Background(), &Sandbox{ID: id})
}

func (n *fakeNetwork) Setup(ctx context.Context, p *Sandbox, cfg *runtimeapi.PodSandboxConfig) ([]string, error) {
	if err := n.call("setup", p.ID); err != nil {
		return nil, err
	}
	if p.Namespaces["net"] == "" {
		return nil, fmt.Errorf("setup %s: no network namespace", p.ID)
	}
	n.mu.Lock()
	n.attached[p.ID] = true
	n.mu.Unlock()
	return []string{"10.0.0.2", "fd00::2"}, nil
}

func (n *fakeNetwork) Teardown(ctx context.Context, p *Sandbox) error {
	if err := n.call("teardown", p.ID); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.attached, p.ID)
	n.mu.Unlock()
	return nil
}

// fakeRuntime runs pause processes in memory.
type fakeRuntime struct {
	runtime.Handler
	recorder
	podSandbox bool
	running    map[string]string // id -> status
}

func (r *fakeRuntime) Name() string { return "fake" }
func (r *fakeRuntime) Features() runtime.Features {
	return runtime.Features{PodSandbox: r.podSandbox}
}
func (r *fakeRuntime) SpecSettings() runtime.SpecSettings { return runtime.SpecSettings{} }

func (r *fakeRuntime) CreateUnmonitored(ctx context.Context, id, bundle string) error {
	if err := r.call("create", id); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(bundle, "config.json")); err != nil {
		return err
	}
	r.mu.Lock()
	r.running[id] = runtime.StatusCreated
	r.mu.Unlock()
	return nil
}

func (r *fakeRuntime) Start(ctx context.Context, id, dir string) error {
	if err := r.call("start", id); err != nil {
		return err
	}
	r.mu.Lock()
	r.running[id] = runtime.StatusRunning
	r.mu.Unlock()
	return nil
}

func (r *fakeRuntime) State(ctx context.Context, id string) (*runtime.State, error) {
	if err := r.call("state", id); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.running[id]
	if !ok {
		return nil, errdefs.NotFound("fake state " + id)
	}
	return &runtime.State{ID: id, Status: st, Pid: 4242}, nil
}

func (r *fakeRuntime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	if err := r.call("kill", id, int(sig)); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[id]; !ok {
		return errdefs.NotFound("fake kill " + id)
	}
	r.running[id] = runtime.StatusStopped
	return nil
}

func (r *fakeRuntime) Delete(ctx context.Context, id string, force bool) error {
	if err := r.call("delete", id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.running, id)
	r.mu.Unlock()
	return nil
}

func (r *fakeRuntime) live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// fakePauser runs berthd's own pause processes in memory; each is named by
// the test's pid and a start time of its own.
type fakePauser struct {
	recorder
	last    uint64
	running map[PauseProc]string // -> pod id
	dirs    map[PauseProc]string // -> the request's Dir's parent
	moved   map[PauseProc]string // -> the cgroup it was last put in
	exited  map[string]func()    // pod id -> the request's Exited
	// aliveOnce makes the next Alive say yes, whatever it asks about.
	aliveOnce bool
}

// exit ends pod id's pause process as if it exited by itself.
func (f *fakePauser) exit(id string) {
	f.mu.Lock()
	for pp, pid := range f.running {
		if pid == id {
			delete(f.running, pp)
		}
	}
	hook := f.exited[id]
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
}

func (f *fakePauser) Start(ctx context.Context, req PauseRequest) (PauseProc, error) {
	id := filepath.Base(req.Dir)
	if err := f.call("start", id); err != nil {
		return PauseProc{}, err
	}
	// Without a cgroup only ahead of its pod (Move comes at the take).
	prepared := filepath.Base(filepath.Dir(req.Dir)) == preparedDir
	if req.Namespaces["net"] == "" || (req.Cgroup == "") != prepared {
		return PauseProc{}, fmt.Errorf("pause of %s: no network namespace, or a cgroup unlike its kind: %+v", id, req)
	}
	if prepared {
		for _, k := range []string{"net", "ipc", "uts"} {
			if req.Namespaces[k] != filepath.Join(req.Dir, k+"ns") {
				return PauseProc{}, fmt.Errorf("prepared pause of %s: %s namespace %q, not the prepared one", id, k, req.Namespaces[k])
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last++
	pp := PauseProc{PID: os.Getpid(), StartTime: f.last}
	f.running[pp] = id
	if f.dirs == nil {
		f.dirs, f.moved = map[PauseProc]string{}, map[PauseProc]string{}
	}
	f.dirs[pp] = filepath.Dir(req.Dir)
	f.moved[pp] = req.Cgroup
	if f.exited == nil {
		f.exited = map[string]func(){}
	}
	f.exited[id] = req.Exited
	return pp, nil
}

func (f *fakePauser) Kill(pp PauseProc) error {
	f.mu.Lock()
	id := f.running[pp]
	f.mu.Unlock()
	if err := f.call("kill", id); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.running, pp)
	f.mu.Unlock()
	return nil
}

func (f *fakePauser) Alive(pp PauseProc) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aliveOnce {
		f.aliveOnce = false
		return true
	}
	_, ok := f.running[pp]
	return ok
}

func (f *fakePauser) Find(podsDir string) map[string][]PauseProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]PauseProc{}
	for pp, id := range f.running {
		// "" finds all; one a test added by hand is a pod dir's.
		d, ok := f.dirs[pp]
		if !ok {
			d = filepath.Join(filepath.Dir(podsDir), "sandboxes")
		}
		if podsDir == "" || d == podsDir {
			out[id] = append(out[id], pp)
		}
	}
	return out
}

func (f *fakePauser) Move(pp PauseProc, cgroup string) error {
	f.mu.Lock()
	id, ok := f.running[pp]
	f.mu.Unlock()
	if err := f.call("move", id); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pause process %+v is gone", pp)
	}
	f.mu.Lock()
	f.moved[pp] = cgroup
	f.mu.Unlock()
	return nil
}

// cgroup returns the cgroup pod id's pause process was last put in.
func (f *fakePauser) cgroup(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for pp, pid := range f.running {
		if pid == id {
			return f.moved[pp]
		}
	}
	return ""
}

func (f *fakePauser) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.running)
}

type fakeRuntimes struct{ h *fakeRuntime }

func (f fakeRuntimes) Handler(name string) (runtime.Handler, error) {
	if name != "" && name != "fake" {
		return nil, errdefs.Invalid("no runtime handler " + name)
	}
	return f.h, nil
}

// harness is a pod service over fakes and a real store in a temp dir.
type harness struct {
	t      *testing.T
	dir    string
	store  *store.Store
	mounts *fakeMounts
	net    *fakeNetwork
	rt     *fakeRuntime
	pauser *fakePauser
	s      *Service
}

// pauses counts the pause processes of either kind.
func (h *harness) pauses() int { return h.rt.live() + h.pauser.live() }

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, dir: dir, store: st,
		mounts: &fakeMounts{mounted: map[string]bool{}},
		net:    &fakeNetwork{attached: map[string]bool{}},
		rt:     &fakeRuntime{running: map[string]string{}},
		pauser: &fakePauser{running: map[PauseProc]string{}},
	}
	t.Cleanup(func() { h.store.Close() })
	h.s = h.open()
	return h
}

// open starts a service over the harness's store and fakes, as berthd does
// at start (after a crash too).
func (h *harness) open() *Service {
	h.t.Helper()
	s, err := New(Config{
		Store: h.store, StateDir: filepath.Join(h.dir, "state"), Runtimes: fakeRuntimes{h.rt},
		PauseBinary: "/bin/true", CgroupDriver: "cgroupfs", DefaultCgroupParent: "/berth-test-" + filepath.Base(h.dir),
		Network: h.net, mounts: h.mounts, Pauser: h.pauser, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// podConfig is a pod with its own network; sharedPID gives it a pause
// process.
func (h *harness) podConfig(name string, sharedPID bool) *runtimeapi.PodSandboxConfig {
	pid := runtimeapi.NamespaceMode_CONTAINER
	if sharedPID {
		pid = runtimeapi.NamespaceMode_POD
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: filepath.Join(h.dir, "logs", name),
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: pid},
		}},
	}
}

func (h *harness) run(name string, sharedPID bool) string {
	h.t.Helper()
	id, err := h.s.Run(context.Background(), h.podConfig(name, sharedPID), "")
	if err != nil {
		h.t.Fatalf("run %s: %v", name, err)
	}
	return id
}

func (h *harness) get(id string) *Sandbox {
	h.t.Helper()
	p, err := h.s.Get(id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	return p
}

func (h *harness) podDirs() []string {
	es, _ := os.ReadDir(filepath.Join(h.dir, "state", "sandboxes"))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// stopRemove stops and removes pods, as kubelet does.
func (h *harness) stopRemove(ids ...string) {
	h.t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		if err := h.s.Stop(ctx, id); err != nil {
			h.t.Fatal(err)
		}
		if err := h.s.Remove(ctx, id); err != nil {
			h.t.Fatal(err)
		}
	}
}

// assertNothingHeld checks that no pod holds anything on the host: mounts,
// network attachments, pause processes, pod dirs.
func (h *harness) assertNothingHeld() {
	h.t.Helper()
	if n := h.mounts.count(); n != 0 {
		h.t.Errorf("%d mounts left: %v", n, h.mounts.mounted)
	}
	if len(h.net.attached) != 0 {
		h.t.Errorf("network attachments left: %v", h.net.attached)
	}
	if n := h.pauses(); n != 0 {
		h.t.Errorf("%d pause processes left", n)
	}
	if d := h.podDirs(); len(d) != 0 {
		h.t.Errorf("pod dirs left: %v", d)
	}
}

type runtimeapiPodConfig = runtimeapi.PodSandboxConfig

// stored is the pod's record as the store has it; ok false if none.
func (h *harness) stored(id string) (Sandbox, bool) {
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
			p, err := fromRecord(r.ID, r.Meta, r.Status)
			if err != nil {
				h.t.Fatal(err)
			}
			return *p, true
		}
	}
	return Sandbox{}, false
}
