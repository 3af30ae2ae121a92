package pod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/cdi"
	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/nri"
	"github.com/berth-project/berth/internal/sandbox"
)

// Domain is what NRI plugins are synchronised with and update through:
// the pod layer's pods and containers, with steps that do not ask plugins
// again. (It is a type of its own because CRI's UpdateContainerResources
// on Service does ask them.)
func (s *Service) Domain() nri.Domain { return domain{s} }

type domain struct{ s *Service }

// ListPodSandboxes lists every pod for a synchronising plugin. It reads
// the sandbox service's published records, which no CRI call holds locked.
func (d domain) ListPodSandboxes(context.Context) ([]*nri.Pod, error) {
	s := d.s
	var out []*nri.Pod
	for _, p := range s.sandboxes.List() {
		out = append(out, nriPod(p))
	}
	return out, nil
}

// ListContainers lists the containers that have not exited, each with the
// spec it was created with.
func (d domain) ListContainers(context.Context) ([]*nri.Container, error) {
	s := d.s
	var out []*nri.Container
	for _, c := range s.containers.List() {
		if c.State == container.Exited {
			continue
		}
		sp, err := s.containers.Spec(c.ID)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			return nil, err
		}
		out = append(out, nriContainer(c, sp))
	}
	return out, nil
}

// UpdateContainerResources applies an update a plugin asked for, without
// asking plugins again.
func (d domain) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	return d.s.containers.UpdateResources(ctx, id, res)
}

// EvictContainer stops a container a plugin asked to evict, at once (as
// an OOM kill would): the plugin acts for the node.
func (d domain) EvictContainer(ctx context.Context, id, reason string) error {
	d.s.log.Warn("NRI plugin evicts container", "container", id, "reason", reason)
	return d.s.StopContainer(ctx, id, 0)
}

// pluginView is a pod and container as plugins see them; with NRI off it
// is never built.
func (s *Service) nriView(c *container.Container) (*nri.Pod, *nri.Container) {
	var pod *nri.Pod
	if p, err := s.sandboxes.Get(c.PodID); err == nil {
		pod = nriPod(p)
	} else {
		pod = &nri.Pod{ID: c.PodID}
	}
	sp, err := s.containers.Spec(c.ID)
	if err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("reading container spec for NRI", "container", c.ID, "err", err)
	}
	return pod, nriContainer(c, sp)
}

// applyFollowup carries out what plugins asked of other containers; the
// CRI call that caused it has succeeded, so failures are logged.
func (s *Service) applyFollowup(ctx context.Context, f nri.Followup, after string) {
	if f.Empty() {
		return
	}
	if err := s.nri.Apply(context.WithoutCancel(ctx), f); err != nil {
		s.log.Warn("NRI updates of other containers failed", "after", after, "err", err)
	}
}

// watchExits tells plugins about containers that exit by themselves, for
// as long as the bus runs. A subscription dropped for falling behind is
// renewed: a missed exit is then relayed at removal at the latest.
func (s *Service) watchExits(bus *events.Bus) {
	for {
		sub := bus.Subscribe(0)
		for ev := range sub.Events() {
			c, ok := ev.Object.(*container.Container)
			if ev.Kind != events.ContainerStopped || !ok {
				continue
			}
			pod, ctr := s.nriView(c)
			s.nri.ContainerExited(context.Background(), pod, ctr)
		}
		if !sub.Dropped() {
			return // the bus closed
		}
		s.log.Warn("NRI exit watcher fell behind; resubscribing")
	}
}

// adjustSpec is the container create path's spec adjuster: CDI devices
// first, then NRI plugins, which see those devices and may add their own.
func (s *Service) adjustSpec(st *createState) container.SpecAdjuster {
	return func(ctx context.Context, d *container.Draft) error {
		if err := s.injectCDI(d); err != nil {
			return err
		}
		if !s.nri.Enabled() {
			return nil
		}
		st.pod = nriPod(d.Pod)
		st.ctr = &nri.Container{
			ID: d.ID, PodID: d.Pod.ID, Config: d.Config, State: runtimeapi.ContainerState_CONTAINER_CREATED,
			CreatedAt: d.CreatedAt, Image: nri.Image{Name: d.ImageName, ConfigDigest: d.Image.ID},
		}
		_, f, err := s.nri.CreateContainer(ctx, st.pod, st.ctr, d.Spec)
		if err != nil {
			st.pod, st.ctr = nil, nil // plugins were told it is gone
			return err
		}
		st.ctr.Spec = d.Spec
		st.followup = f
		return nil
	}
}

// createState is what a CreateContainer's adjuster leaves for the steps
// after the runtime create.
type createState struct {
	pod      *nri.Pod
	ctr      *nri.Container // nil: plugins have not seen the container
	followup nri.Followup
}

// injectCDI applies the CDI devices the container asks for. Without a
// resolver a container asking for devices fails rather than starting
// without them.
func (s *Service) injectCDI(d *container.Draft) error {
	if s.cdi != nil {
		_, err := s.cdi.InjectContainer(d.Spec, d.Config)
		return err
	}
	devices, err := cdi.Devices(d.Config)
	if err != nil {
		return err
	}
	if len(devices) != 0 {
		return errdefs.Precondition(fmt.Sprintf("container asks for CDI devices %v, but this berthd has no CDI resolver", devices))
	}
	return nil
}

func nriPod(p *sandbox.Sandbox) *nri.Pod {
	out := &nri.Pod{
		ID: p.ID, Config: p.Config, RuntimeHandler: p.RuntimeHandler, CgroupsPath: p.CgroupParent,
	}
	if p.IP != "" {
		out.IPs = append([]string{p.IP}, p.AdditionalIPs...)
	}
	for kind, path := range p.Namespaces {
		t := specs.LinuxNamespaceType(kind)
		if kind == "net" {
			t = specs.NetworkNamespace
		}
		out.Namespaces = append(out.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
	}
	if r := p.Resources; r != nil {
		out.Overhead, out.Resources = r.GetOverhead(), r.GetResources()
	}
	return out
}

func nriContainer(c *container.Container, sp *specs.Spec) *nri.Container {
	return &nri.Container{
		ID: c.ID, PodID: c.PodID, Config: c.Config, Spec: sp,
		State: criState(c.State), Pid: uint32(max(c.Pid, 0)),
		CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt,
		ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message,
		Image: nri.Image{Name: c.Image, ConfigDigest: c.ImageID},
	}
}

func criState(s container.State) runtimeapi.ContainerState {
	switch s {
	case container.Created:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case container.Running:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// logPluginError logs a plugin's error on a step that has already
// happened and cannot be undone (post-events, stop, removal).
func logPluginError(log *slog.Logger, event, id string, err error) {
	if err == nil {
		return
	}
	if errors.Is(err, nri.ErrPlugin) {
		log.Warn("NRI plugin failed an event berth does not undo", "event", event, "id", id, "err", err)
		return
	}
	log.Warn("NRI event", "event", event, "id", id, "err", err)
}
