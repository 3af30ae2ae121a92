package nri

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testPlugin records the events it sees and misbehaves on request.
type testPlugin struct {
	mu     sync.Mutex
	events []string
	synced chan struct{}
	// failOn and hangOn name an event ("CreateContainer", ...) to fail or
	// to block in until release is closed.
	failOn, hangOn string
	release        chan struct{}
	// otherUpdate, when set, is returned from CreateContainer as an
	// update of another container.
	otherUpdate *api.ContainerUpdate
	syncPods    []*api.PodSandbox
	syncCtrs    []*api.Container
	seenCreate  *api.Container
}

func (p *testPlugin) record(_ context.Context, ev, id string) error {
	p.mu.Lock()
	p.events = append(p.events, ev+":"+id)
	p.mu.Unlock()
	if ev == p.failOn {
		return fmt.Errorf("test plugin fails %s on request", ev)
	}
	if ev == p.hangOn {
		// Ignore ctx like a stuck plugin would; the test releases it.
		<-p.release
	}
	return nil
}

func (p *testPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *testPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.syncPods, p.syncCtrs = pods, ctrs
	p.mu.Unlock()
	close(p.synced)
	return nil, nil
}
func (p *testPlugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.record(ctx, "RunPodSandbox", pod.Id)
}
func (p *testPlugin) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.record(ctx, "StopPodSandbox", pod.Id)
}
func (p *testPlugin) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.record(ctx, "RemovePodSandbox", pod.Id)
}
func (p *testPlugin) UpdatePodSandbox(ctx context.Context, pod *api.PodSandbox, _, _ *api.LinuxResources) error {
	return p.record(ctx, "UpdatePodSandbox", pod.Id)
}
func (p *testPlugin) CreateContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.seenCreate = c
	p.mu.Unlock()
	if err := p.record(ctx, "CreateContainer", c.Id); err != nil {
		return nil, nil, err
	}
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("NRI_TEST", "adjusted")
	adj.AddMount(&api.Mount{Destination: "/nri", Source: "/tmp", Type: "bind", Options: []string{"bind", "ro"}})
	var upd []*api.ContainerUpdate
	if p.otherUpdate != nil {
		upd = append(upd, p.otherUpdate)
	}
	return adj, upd, nil
}
func (p *testPlugin) PostCreateContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) error {
	return p.record(ctx, "PostCreateContainer", c.Id)
}
func (p *testPlugin) StartContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) error {
	return p.record(ctx, "StartContainer", c.Id)
}
func (p *testPlugin) PostStartContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) error {
	return p.record(ctx, "PostStartContainer", c.Id)
}
func (p *testPlugin) UpdateContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	if err := p.record(ctx, "UpdateContainer", c.Id); err != nil {
		return nil, err
	}
	u := &api.ContainerUpdate{ContainerId: c.Id}
	u.SetLinuxCPUSetCPUs("0")
	return []*api.ContainerUpdate{u}, nil
}
func (p *testPlugin) PostUpdateContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) error {
	return p.record(ctx, "PostUpdateContainer", c.Id)
}
func (p *testPlugin) StopContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	return nil, p.record(ctx, "StopContainer", c.Id)
}
func (p *testPlugin) RemoveContainer(ctx context.Context, _ *api.PodSandbox, c *api.Container) error {
	return p.record(ctx, "RemoveContainer", c.Id)
}

// fakeDomain lists fixed pods and containers and records what NRI asks.
type fakeDomain struct {
	mu      sync.Mutex
	pods    []*Pod
	ctrs    []*Container
	updates map[string]*runtimeapi.LinuxContainerResources
	evicted []string
}

func (d *fakeDomain) ListPodSandboxes(context.Context) ([]*Pod, error)     { return d.pods, nil }
func (d *fakeDomain) ListContainers(context.Context) ([]*Container, error) { return d.ctrs, nil }
func (d *fakeDomain) UpdateContainerResources(_ context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.updates == nil {
		d.updates = map[string]*runtimeapi.LinuxContainerResources{}
	}
	d.updates[id] = res
	return nil
}
func (d *fakeDomain) EvictContainer(_ context.Context, id, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evicted = append(d.evicted, id)
	return nil
}
func (d *fakeDomain) update(id string) *runtimeapi.LinuxContainerResources {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.updates[id]
}

// setup starts an adaptation on a temp socket and connects p to it.
func setup(t *testing.T, p *testPlugin, d *fakeDomain, timeout time.Duration) *local {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Enable = true
	cfg.SocketPath = filepath.Join(t.TempDir(), "nri.sock")
	cfg.PluginPath = ""
	cfg.PluginConfigPath = t.TempDir()
	cfg.RequestTimeout = timeout
	a, err := New(cfg, Options{RuntimeVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	p.synced = make(chan struct{})
	if p.release == nil {
		p.release = make(chan struct{})
	}
	s, err := stub.New(p, stub.WithSocketPath(cfg.SocketPath), stub.WithPluginName("test"), stub.WithPluginIdx("10"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); s.Stop() })
	select {
	case <-p.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin was not synchronised")
	}
	// The adaptation lists the plugin for events once the sync it runs
	// under finishes; blocking sync waits for that.
	l := a.(*local)
	l.BlockPluginSync()()
	return l
}

func testPod() *Pod {
	return &Pod{
		ID: "pod1",
		Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u1"},
			Labels:   map[string]string{"app": "x"},
		},
		Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/var/run/netns/x"}},
	}
}

func testContainer(id string) (*Container, *specs.Spec) {
	s := &specs.Spec{
		Process: &specs.Process{Args: []string{"sleep", "inf"}, Env: []string{"PATH=/bin"}},
		Root:    &specs.Root{Path: "/rootfs"},
		Linux:   &specs.Linux{CgroupsPath: "/pod1/" + id},
	}
	return &Container{
		ID:    id,
		PodID: "pod1",
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c-" + id},
			Labels:   map[string]string{"l": "v"},
		},
		Spec: s,
	}, s
}

func TestEventOrderAndAdjustment(t *testing.T) {
	p := &testPlugin{otherUpdate: func() *api.ContainerUpdate {
		u := &api.ContainerUpdate{ContainerId: "other"}
		u.SetLinuxCPUSetCPUs("1")
		return u
	}()}
	d := &fakeDomain{
		pods: []*Pod{{ID: "old-pod", Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "old"}}}},
		ctrs: []*Container{{ID: "other", PodID: "old-pod", State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
	}
	n := setup(t, p, d, 2*time.Second)
	if len(p.syncPods) != 1 || p.syncPods[0].Name != "old" || len(p.syncCtrs) != 1 || p.syncCtrs[0].State != api.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("sync: pods %v containers %v", p.syncPods, p.syncCtrs)
	}
	ctx := context.Background()
	pod := testPod()
	ctr, spec := testContainer("c1")

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n.RunPodSandbox(ctx, pod))
	adj, f, err := n.CreateContainer(ctx, pod, ctr, spec)
	must(err)
	if adj == nil {
		t.Fatal("no adjustment returned")
	}
	if !slices.Contains(spec.Process.Env, "NRI_TEST=adjusted") {
		t.Errorf("env not adjusted: %v", spec.Process.Env)
	}
	if i := slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/nri" }); i < 0 || spec.Mounts[i].Source != "/tmp" {
		t.Errorf("mount not added: %+v", spec.Mounts)
	}
	if c := p.seenCreate; c.Name != "c-c1" || c.Labels["l"] != "v" || !slices.Equal(c.Args, []string{"sleep", "inf"}) || c.Linux.CgroupsPath != "/pod1/c1" {
		t.Errorf("plugin saw container %v", c)
	}
	if len(f.Updates) != 1 || f.Updates[0].ContainerId != "other" {
		t.Fatalf("followup: %+v", f)
	}
	must(n.Apply(ctx, f))
	if u := d.update("other"); u == nil || u.CpusetCpus != "1" {
		t.Errorf("update of other container applied as %v", u)
	}
	ctr.Spec = spec
	must(n.PostCreateContainer(ctx, pod, ctr))
	must(n.StartContainer(ctx, pod, ctr))
	must(n.PostStartContainer(ctx, pod, ctr))
	res, _, err := n.UpdateContainer(ctx, pod, ctr, &runtimeapi.LinuxContainerResources{CpuShares: 512, OomScoreAdj: 5})
	must(err)
	if res == nil || res.CpusetCpus != "0" || res.CpuShares != 512 || res.OomScoreAdj != 5 {
		t.Errorf("UpdateContainer returned %v", res)
	}
	must(n.PostUpdateContainer(ctx, pod, ctr))
	_, err = n.StopContainer(ctx, pod, ctr)
	must(err)
	_, err = n.StopContainer(ctx, pod, ctr) // kubelet repeats stops
	must(err)
	must(n.RemoveContainer(ctx, pod, ctr))
	must(n.UpdatePodSandbox(ctx, pod, nil, &runtimeapi.LinuxContainerResources{CpuShares: 1024}))
	must(n.StopPodSandbox(ctx, pod))
	must(n.StopPodSandbox(ctx, pod))
	must(n.RemovePodSandbox(ctx, pod))
	must(n.RemovePodSandbox(ctx, pod))

	want := []string{
		"RunPodSandbox:pod1", "CreateContainer:c1", "PostCreateContainer:c1", "StartContainer:c1",
		"PostStartContainer:c1", "UpdateContainer:c1", "PostUpdateContainer:c1", "StopContainer:c1",
		"RemoveContainer:c1", "UpdatePodSandbox:pod1", "StopPodSandbox:pod1", "RemovePodSandbox:pod1",
	}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
}

func TestRemoveImpliesStop(t *testing.T) {
	p := &testPlugin{}
	n := setup(t, p, &fakeDomain{}, 2*time.Second)
	ctx := context.Background()
	pod := testPod()
	ctr, spec := testContainer("c1")
	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.CreateContainer(ctx, pod, ctr, spec); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	if err := n.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"RunPodSandbox:pod1", "CreateContainer:c1", "StopContainer:c1", "RemoveContainer:c1", "StopPodSandbox:pod1", "RemovePodSandbox:pod1"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
}

func TestPluginErrorFailsCall(t *testing.T) {
	p := &testPlugin{failOn: "CreateContainer"}
	n := setup(t, p, &fakeDomain{}, 2*time.Second)
	ctx := context.Background()
	pod := testPod()
	ctr, spec := testContainer("c1")
	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(spec.Process.Env)
	_, _, err := n.CreateContainer(ctx, pod, ctr, spec)
	if err == nil || !errors.Is(err, ErrPlugin) {
		t.Fatalf("CreateContainer error = %v, want a plugin error", err)
	}
	if !slices.Equal(spec.Process.Env, before) || len(spec.Mounts) != 0 {
		t.Errorf("spec changed by a failed create: env %v mounts %v", spec.Process.Env, spec.Mounts)
	}
	// Plugins are told the container is gone; a later remove relays nothing.
	if err := n.RemoveContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	want := []string{"RunPodSandbox:pod1", "CreateContainer:c1", "StopContainer:c1", "RemoveContainer:c1"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
}

func TestPluginErrorFailsRunPod(t *testing.T) {
	p := &testPlugin{failOn: "RunPodSandbox"}
	n := setup(t, p, &fakeDomain{}, 2*time.Second)
	ctx := context.Background()
	pod := testPod()
	if err := n.RunPodSandbox(ctx, pod); !errors.Is(err, ErrPlugin) {
		t.Fatalf("RunPodSandbox error = %v, want a plugin error", err)
	}
	if err := n.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"RunPodSandbox:pod1", "StopPodSandbox:pod1", "RemovePodSandbox:pod1"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
}

func TestHangingPluginCutOff(t *testing.T) {
	p := &testPlugin{hangOn: "CreateContainer"}
	defer close(func() chan struct{} { p.release = make(chan struct{}); return p.release }())
	timeout := 300 * time.Millisecond
	n := setup(t, p, &fakeDomain{}, timeout)
	ctx := context.Background()
	pod := testPod()
	ctr, spec := testContainer("c1")
	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err := n.CreateContainer(ctx, pod, ctr, spec)
	took := time.Since(start)
	// The default failure policy drops a plugin that times out and goes
	// on without it.
	if err != nil {
		t.Fatalf("CreateContainer with a hanging plugin: %v", err)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("CreateContainer took %s with a %s plugin timeout", took, timeout)
	}
	// The plugin is disconnected: later events no longer reach it.
	if err := n.StartContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	if got := p.seen(); slices.Contains(got, "StartContainer:c1") {
		t.Errorf("hung plugin still gets events: %v", got)
	}
}

func TestUnsolicitedUpdate(t *testing.T) {
	p := &testPlugin{}
	d := &fakeDomain{}
	cfg := DefaultConfig()
	cfg.Enable = true
	cfg.SocketPath = filepath.Join(t.TempDir(), "nri.sock")
	cfg.PluginPath = ""
	cfg.PluginConfigPath = t.TempDir()
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(d); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	p.synced = make(chan struct{})
	s, err := stub.New(p, stub.WithSocketPath(cfg.SocketPath), stub.WithPluginName("upd"), stub.WithPluginIdx("20"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	<-p.synced
	u := &api.ContainerUpdate{ContainerId: "c9"}
	u.SetLinuxMemoryLimit(64 << 20)
	failed, err := s.UpdateContainers([]*api.ContainerUpdate{u})
	if err != nil || len(failed) != 0 {
		t.Fatalf("UpdateContainers: failed %v err %v", failed, err)
	}
	if r := d.update("c9"); r == nil || r.MemoryLimitInBytes != 64<<20 {
		t.Errorf("domain got %v", r)
	}
}

func TestDisabledIsNoop(t *testing.T) {
	a, err := New(DefaultConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Fatal("default config enables NRI")
	}
	ctr, spec := testContainer("c1")
	adj, f, err := a.CreateContainer(context.Background(), testPod(), ctr, spec)
	if adj != nil || !f.Empty() || err != nil || len(spec.Mounts) != 0 {
		t.Errorf("disabled CreateContainer: %v %v %v", adj, f, err)
	}
}

func TestAdjustCDIRefusedWithoutInjector(t *testing.T) {
	_, spec := testContainer("c1")
	adj := &api.ContainerAdjustment{}
	adj.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/dev=x"})
	if err := Adjust(spec, adj, nil); !errors.Is(err, errNoCDI) {
		t.Fatalf("Adjust with CDI devices and no injector: %v", err)
	}
	var got []string
	if err := Adjust(spec, adj, func(_ *specs.Spec, d []string) error { got = d; return nil }); err != nil || !slices.Equal(got, []string{"vendor.com/dev=x"}) {
		t.Fatalf("injector got %v, err %v", got, err)
	}
}

func TestToCRIResourcesRefusesWhatCRICannotCarry(t *testing.T) {
	r := &api.LinuxResources{Cpu: &api.LinuxCPU{Cpus: "0-1"}, Pids: &api.LinuxPids{Limit: 10}, RdtClass: api.String("gold")}
	if _, err := ToCRIResources(r); err == nil {
		t.Fatal("pids and rdt class converted silently")
	}
	r = FromCRIResources(&runtimeapi.LinuxContainerResources{CpuShares: 2, CpuQuota: 3, CpuPeriod: 4, MemoryLimitInBytes: 5, CpusetCpus: "1", Unified: map[string]string{"a": "b"}})
	c, err := ToCRIResources(r)
	if err != nil || c.CpuShares != 2 || c.CpuQuota != 3 || c.CpuPeriod != 4 || c.MemoryLimitInBytes != 5 || c.CpusetCpus != "1" || c.Unified["a"] != "b" {
		t.Fatalf("round trip: %v %v", c, err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Enable = true
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults enabled: %v", err)
	}
	c.SocketPath = "nri.sock"
	if err := c.Validate(); err == nil {
		t.Error("relative socket accepted")
	}
	c = DefaultConfig()
	c.Enable, c.RequestTimeout = true, 0
	if err := c.Validate(); err == nil {
		t.Error("zero request timeout accepted")
	}
}

func TestConfigTOML(t *testing.T) {
	var c struct {
		NRI Config `toml:"nri"`
	}
	c.NRI = DefaultConfig()
	if _, err := toml.Decode("[nri]\nenable = true\nplugin_request_timeout = \"750ms\"\n", &c); err != nil {
		t.Fatal(err)
	}
	if !c.NRI.Enable || c.NRI.RequestTimeout != 750*time.Millisecond || c.NRI.RegistrationTimeout != 5*time.Second {
		t.Fatalf("decoded %+v", c.NRI)
	}
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `plugin_request_timeout = "750ms"`) {
		t.Errorf("encoded:\n%s", b.String())
	}
}
