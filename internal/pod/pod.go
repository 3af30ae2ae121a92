// Package pod orchestrates pods above the sandbox and container services:
// the CRI pod and container lifecycle steps that span both (a pod's
// containers are stopped and removed before the pod itself), the image
// removals that must know which layers containers use, and the policy for
// runtime state that no record owns. sandbox, container and image never
// call up into each other; what one needs of another is passed down from
// here.
//
// Every lifecycle step has one method, so that per-step hooks (NRI's pod
// and container events) have one place each to go.
package pod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/cdi"
	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/nri"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/usernsdir"
)

// Config wires the services the pod layer orchestrates.
type Config struct {
	Sandboxes  *sandbox.Service
	Containers *container.Service
	Images     *image.Service
	Logger     *slog.Logger
	// NRI relays the lifecycle steps to node plugins; nil: none.
	NRI nri.API
	// CDI resolves the CDI devices containers ask for; nil: a container
	// asking for one fails instead of starting without it.
	CDI *cdi.Resolver
	// Events carries container exits to NRI plugins; nil: plugins learn
	// of an exit when the container is stopped or removed.
	Events *events.Bus
	// UsernsDir holds the rootfs mount points of pods in user namespaces;
	// New removes those no container or pod owns.
	UsernsDir usernsdir.Dir
}

// Service runs the pod and container lifecycle steps.
type Service struct {
	sandboxes  *sandbox.Service
	containers *container.Service
	images     *image.Service
	log        *slog.Logger
	nri        nri.API
	cdi        *cdi.Resolver

	// opMu serialises the multi-service steps of one pod (stop, remove),
	// so two teardowns of a pod do not interleave their container and
	// sandbox steps.
	opMu sync.Map // pod id -> *sync.Mutex
}

// New builds the pod layer over services that have loaded their records,
// and collects what a crash left that no record owns: runtime state and
// container dirs that are neither a container's nor a pod's (see
// container.RemoveOrphans), then image blobs and layers that no image,
// container or pull uses (a pull that had not recorded its image yet, a
// RemoveImage whose GC had not finished).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NRI == nil {
		cfg.NRI = nri.Disabled{}
	}
	s := &Service{sandboxes: cfg.Sandboxes, containers: cfg.Containers, images: cfg.Images, log: cfg.Logger, nri: cfg.NRI, cdi: cfg.CDI}
	if err := s.containers.RemoveOrphans(ctx, s.sandboxes.OwnsRuntimeID); err != nil {
		return nil, fmt.Errorf("remove orphaned containers: %w", err)
	}
	// After the orphans, whose clean-up removes their own entries.
	if gone, err := cfg.UsernsDir.Sweep(func(id string) bool {
		_, err := s.containers.Get(id)
		return err == nil || s.containers.Quarantined(id) || s.sandboxes.OwnsRuntimeID(id)
	}); err != nil || len(gone) > 0 {
		s.log.Warn("removed rootfs mount points of pods in user namespaces left by a crash", "ids", gone, "err", err)
	}
	// After the orphans: their layers are no longer in use.
	if err := s.images.GC(ctx, s.containers.LayerInUse); err != nil {
		s.log.Warn("image garbage collection at start-up failed; the next RemoveImage retries it", "err", err)
	}
	if s.nri.Enabled() && cfg.Events != nil {
		go s.watchExits(cfg.Events)
	}
	return s, nil
}

func (s *Service) lock(podID string) func() {
	m, _ := s.opMu.LoadOrStore(podID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// RunPodSandbox creates and starts a pod and returns its id. Plugins see
// it once it is set up and before it is listed; a plugin error undoes it.
func (s *Service) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	if !s.nri.Enabled() {
		return s.sandboxes.Run(ctx, cfg, handler)
	}
	// A plugin registering meanwhile is synchronised once the pod is
	// listed, so it sees the pod one way or the other.
	unblock := s.nri.BlockPluginSync()
	defer unblock()
	return s.sandboxes.Run(ctx, cfg, handler, sandbox.WithReadyHook(func(ctx context.Context, p *sandbox.Sandbox) error {
		return s.nri.RunPodSandbox(ctx, nriPod(p))
	}))
}

// StopPodSandbox stops the pod's containers, with no grace period (kubelet
// stops them itself, with theirs, first), then the pod: its network, pause
// process and namespaces. It is idempotent and succeeds for unknown pods.
func (s *Service) StopPodSandbox(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	return s.stop(ctx, id)
}

// stop tells plugins of the stopped containers, then of the pod while it
// is still set up. A plugin cannot hold a stop up: its errors are logged.
func (s *Service) stop(ctx context.Context, id string) error {
	if err := s.containers.StopPod(ctx, id); err != nil {
		return fmt.Errorf("stop containers of pod %s: %w", id, err)
	}
	if s.nri.Enabled() {
		for _, c := range s.podContainers(id) {
			s.relayStop(ctx, c.ID)
		}
		if p, err := s.sandboxes.Get(id); err == nil && p.State == sandbox.Ready {
			logPluginError(s.log, "StopPodSandbox", id, s.nri.StopPodSandbox(ctx, nriPod(p)))
		}
	}
	return s.sandboxes.Stop(ctx, id)
}

// RemovePodSandbox removes the pod's containers, then the pod; a ready pod
// is stopped first. It is idempotent and succeeds for unknown pods.
func (s *Service) RemovePodSandbox(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	p, err := s.sandboxes.Get(id)
	if err != nil {
		// Unknown: already removed. Containers go before their pod, so
		// none are left either.
		return nil
	}
	if p.State == sandbox.Ready {
		if err := s.stop(ctx, id); err != nil {
			return err
		}
	}
	if err := s.removeContainers(ctx, id); err != nil {
		return fmt.Errorf("remove containers of pod %s: %w", id, err)
	}
	if err := s.sandboxes.Remove(ctx, id); err != nil {
		return err
	}
	logPluginError(s.log, "RemovePodSandbox", id, s.nri.RemovePodSandbox(ctx, nriPod(p)))
	s.opMu.Delete(id)
	return nil
}

func (s *Service) removeContainers(ctx context.Context, podID string) error {
	if !s.nri.Enabled() {
		return s.containers.RemovePod(ctx, podID)
	}
	var errs []error
	for _, c := range s.podContainers(podID) {
		errs = append(errs, s.RemoveContainer(ctx, c.ID))
	}
	return errors.Join(errs...)
}

func (s *Service) podContainers(podID string) []*container.Container {
	var out []*container.Container
	for _, c := range s.containers.List() {
		if c.PodID == podID {
			out = append(out, c)
		}
	}
	return out
}

// UpdatePodSandboxResources applies pod-level resources (kubelet calls it
// after resizing the pod cgroup itself): plugins see them first, then
// the pod's record and cgroup change.
func (s *Service) UpdatePodSandboxResources(ctx context.Context, id string, overhead, res *runtimeapi.LinuxContainerResources) error {
	unlock := s.lock(id)
	defer unlock()
	p, err := s.sandboxes.Get(id)
	if err != nil {
		return err
	}
	if p.State != sandbox.Ready {
		return errdefs.Precondition(fmt.Sprintf("pod sandbox %s is not ready (stopped); its resources cannot be updated", id))
	}
	if err := s.nri.UpdatePodSandbox(ctx, nriPod(p), overhead, res); err != nil {
		return err
	}
	if err := s.sandboxes.UpdateResources(ctx, id, overhead, res); err != nil {
		return err
	}
	if p, err = s.sandboxes.Get(id); err == nil {
		logPluginError(s.log, "PostUpdatePodSandbox", id, s.nri.PostUpdatePodSandbox(ctx, nriPod(p)))
	}
	return nil
}

// CreateContainer makes a container in a ready pod, created, not started.
// CDI devices and plugin adjustments are applied to its spec before the
// runtime sees it; a failure at any step leaves nothing behind, and
// plugins that saw the container are told it is gone.
func (s *Service) CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	var st createState
	// Held until the container is listed, so a plugin registering
	// meanwhile sees it either in its synchronisation or as an event.
	unblock := s.nri.BlockPluginSync()
	id, err := s.containers.Create(ctx, podID, cfg, podCfg, container.WithSpecAdjuster(s.adjustSpec(&st)))
	unblock()
	if err != nil {
		if st.ctr != nil {
			s.nri.UndoCreateContainer(context.WithoutCancel(ctx), st.pod, st.ctr)
		}
		return "", err
	}
	if st.ctr == nil {
		return id, nil
	}
	logPluginError(s.log, "PostCreateContainer", id, s.nri.PostCreateContainer(ctx, st.pod, st.ctr))
	s.applyFollowup(ctx, st.followup, "CreateContainer")
	return id, nil
}

// PrepareAhead has what berthd keeps ready for the next pod start (a pod
// network, a spare container monitor) made again in the background if
// it was taken. The CRI layer calls it once no pod start call has been
// in flight for a moment: made during the create and start, they would
// compete with them for the CPU (on two CPUs, ~5 ms more per create).
// Without a call they are made a second after they were taken.
func (s *Service) PrepareAhead() {
	s.sandboxes.PrepareAhead()
	s.containers.PrepareAhead()
}

// StartContainer starts a created container. Plugins see it right before
// the start (an error fails the start) and once it runs.
func (s *Service) StartContainer(ctx context.Context, id string) error {
	if !s.nri.Enabled() {
		return s.containers.Start(ctx, id)
	}
	c, err := s.containers.Get(id)
	if err != nil || c.State != container.Created {
		return s.containers.Start(ctx, id) // its error
	}
	pod, ctr := s.nriView(c)
	if err := s.nri.StartContainer(ctx, pod, ctr); err != nil {
		return err
	}
	if err := s.containers.Start(ctx, id); err != nil {
		return err
	}
	if c, err := s.containers.Get(id); err == nil {
		ctr = nriContainer(c, ctr.Spec)
	}
	logPluginError(s.log, "PostStartContainer", id, s.nri.PostStartContainer(ctx, pod, ctr))
	return nil
}

// StopContainer stops a container: its stop signal, SIGKILL after timeout.
// Plugins are told once it has stopped.
func (s *Service) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	if err := s.containers.Stop(ctx, id, timeout); err != nil {
		return err
	}
	if s.nri.Enabled() {
		s.relayStop(ctx, id)
	}
	return nil
}

// relayStop tells plugins a container stopped (once per container, also
// when its exit got there first) and applies what they ask of others.
func (s *Service) relayStop(ctx context.Context, id string) {
	c, err := s.containers.Get(id)
	if err != nil {
		return
	}
	pod, ctr := s.nriView(c)
	f, err := s.nri.StopContainer(ctx, pod, ctr)
	logPluginError(s.log, "StopContainer", id, err)
	s.applyFollowup(ctx, f, "StopContainer")
}

// UpdateContainerResources applies new resource limits to a container.
// Plugins see the request first and may change it; an error fails it.
func (s *Service) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	if !s.nri.Enabled() {
		return s.containers.UpdateResources(ctx, id, res)
	}
	c, err := s.containers.Get(id)
	if err != nil || c.State == container.Exited || res == nil {
		return s.containers.UpdateResources(ctx, id, res) // its error
	}
	pod, ctr := s.nriView(c)
	adjusted, f, err := s.nri.UpdateContainer(ctx, pod, ctr, res)
	if err != nil {
		return err
	}
	if adjusted != nil {
		res = adjusted
	}
	if err := s.containers.UpdateResources(ctx, id, res); err != nil {
		return err
	}
	logPluginError(s.log, "PostUpdateContainer", id, s.nri.PostUpdateContainer(ctx, pod, ctr))
	s.applyFollowup(ctx, f, "UpdateContainer")
	return nil
}

// RemoveContainer removes a container, forcibly if it still runs.
// Plugins are told once it is gone (with a stop first if they missed it).
func (s *Service) RemoveContainer(ctx context.Context, id string) error {
	if !s.nri.Enabled() {
		return s.containers.Remove(ctx, id)
	}
	c, err := s.containers.Get(id)
	if err != nil {
		return s.containers.Remove(ctx, id) // unknown: fine
	}
	pod, ctr := s.nriView(c) // the spec goes with the bundle
	if err := s.containers.Remove(ctx, id); err != nil {
		return err
	}
	ctr.State = runtimeapi.ContainerState_CONTAINER_EXITED
	logPluginError(s.log, "RemoveContainer", id, s.nri.RemoveContainer(ctx, pod, ctr))
	return nil
}

// RemoveImage removes an image and collects what nothing uses any more;
// layers that containers still use stay.
func (s *Service) RemoveImage(ctx context.Context, ref string) error {
	return s.images.Remove(ctx, ref, s.containers.LayerInUse)
}
