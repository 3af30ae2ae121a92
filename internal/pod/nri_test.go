package pod

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/nri"
)

// recordingNRI is an enabled NRI that records the events it is given,
// adjusts created containers' env, and fails the event named by fail.
type recordingNRI struct {
	nri.Disabled
	fail string

	mu     sync.Mutex
	events []string
	// visible records, per event, whether the pod layer already listed
	// the object the event is about.
	listed func(id string) bool
	seen   map[string]bool
}

func (r *recordingNRI) Enabled() bool { return true }

func (r *recordingNRI) record(ev, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if r.listed != nil {
		r.seen[ev] = r.listed(id)
	}
	if ev == r.fail {
		return fmt.Errorf("%w: %s: induced", nri.ErrPlugin, ev)
	}
	return nil
}

func (r *recordingNRI) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recordingNRI) RunPodSandbox(_ context.Context, p *nri.Pod) error {
	return r.record("RunPodSandbox", p.ID)
}
func (r *recordingNRI) StopPodSandbox(_ context.Context, p *nri.Pod) error {
	return r.record("StopPodSandbox", p.ID)
}
func (r *recordingNRI) RemovePodSandbox(_ context.Context, p *nri.Pod) error {
	return r.record("RemovePodSandbox", p.ID)
}
func (r *recordingNRI) CreateContainer(_ context.Context, _ *nri.Pod, c *nri.Container, s *specs.Spec) (*api.ContainerAdjustment, nri.Followup, error) {
	if err := r.record("CreateContainer", c.ID); err != nil {
		return nil, nri.Followup{}, err
	}
	s.Process.Env = append(s.Process.Env, "FROM_PLUGIN=yes")
	return nil, nri.Followup{}, nil
}
func (r *recordingNRI) UndoCreateContainer(_ context.Context, _ *nri.Pod, c *nri.Container) {
	r.record("UndoCreateContainer", c.ID)
}
func (r *recordingNRI) PostCreateContainer(_ context.Context, _ *nri.Pod, c *nri.Container) error {
	return r.record("PostCreateContainer", c.ID)
}
func (r *recordingNRI) StartContainer(_ context.Context, _ *nri.Pod, c *nri.Container) error {
	return r.record("StartContainer", c.ID)
}
func (r *recordingNRI) PostStartContainer(_ context.Context, _ *nri.Pod, c *nri.Container) error {
	return r.record("PostStartContainer", c.ID)
}
func (r *recordingNRI) StopContainer(_ context.Context, _ *nri.Pod, c *nri.Container) (nri.Followup, error) {
	return nri.Followup{}, r.record("StopContainer", c.ID)
}
func (r *recordingNRI) RemoveContainer(_ context.Context, _ *nri.Pod, c *nri.Container) error {
	return r.record("RemoveContainer", c.ID)
}

// TestNRIHooks checks the pod layer calls plugins at each step, in
// order, before a new pod or container is visible, stores the adjusted
// spec, and undoes a step a plugin fails.
func TestNRIHooks(t *testing.T) {
	rec := &recordingNRI{seen: map[string]bool{}}
	s := newTestPods(t, newCountingHandler(), func(c *Config) { c.NRI = rec })
	rec.listed = func(id string) bool {
		if _, err := s.sandboxes.Get(id); err == nil {
			return true
		}
		_, err := s.containers.Get(id)
		return err == nil
	}
	ctx := context.Background()
	podCfg := podConfig("p-nri", runtimeapi.NamespaceMode_CONTAINER)
	podID, err := s.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.RemovePodSandbox(context.Background(), podID) })
	ctrCfg := func(name string) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: testImage},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER},
			}},
		}
	}
	id, err := s.CreateContainer(ctx, podID, ctrCfg("app"), podCfg)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := s.containers.Spec(id)
	if err != nil || !slices.Contains(sp.Process.Env, "FROM_PLUGIN=yes") {
		t.Errorf("stored spec lacks the plugin's env: %v %+v", err, sp)
	}
	if err := s.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := s.StopPodSandbox(ctx, podID); err != nil { // repeated: no second event
		t.Fatal(err)
	}
	if err := s.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	want := []string{"RunPodSandbox", "CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer",
		"StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox"}
	// StopContainer may come twice (the exit and the CRI call; the real
	// adaptation relays it once): compare without repeats.
	if got := slices.Compact(rec.got()); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
	if rec.seen["RunPodSandbox"] || rec.seen["CreateContainer"] {
		t.Errorf("plugins saw a pod or container already listed: %v", rec.seen)
	}

	// A failed CreateContainer leaves nothing; a failed RunPodSandbox neither.
	rec.fail = "CreateContainer"
	podID, err = s.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateContainer(ctx, podID, ctrCfg("bad"), podCfg); !errors.Is(err, nri.ErrPlugin) {
		t.Fatalf("CreateContainer with a failing plugin: %v", err)
	}
	for _, c := range s.containers.List() {
		t.Errorf("a failed create left container %s", c.ID)
	}
	if err := s.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	rec.fail = "RunPodSandbox"
	if _, err := s.RunPodSandbox(ctx, podConfig("p-nri-fail", runtimeapi.NamespaceMode_CONTAINER), ""); !errors.Is(err, nri.ErrPlugin) {
		t.Fatalf("RunPodSandbox with a failing plugin: %v", err)
	}
	for _, p := range s.sandboxes.List() {
		t.Errorf("a failed run left pod %s", p.ID)
	}
	if _, err := s.containers.Spec("nope"); !errdefs.IsNotFound(err) {
		t.Errorf("spec of an unknown container: %v", err)
	}
}
