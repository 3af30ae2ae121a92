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
	"fmt"
	"log/slog"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/sandbox"
)

// Config wires the services the pod layer orchestrates.
type Config struct {
	Sandboxes  *sandbox.Service
	Containers *container.Service
	Images     *image.Service
	Logger     *slog.Logger
}

// Service runs the pod and container lifecycle steps.
type Service struct {
	sandboxes  *sandbox.Service
	containers *container.Service
	images     *image.Service
	log        *slog.Logger

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
	s := &Service{sandboxes: cfg.Sandboxes, containers: cfg.Containers, images: cfg.Images, log: cfg.Logger}
	if err := s.containers.RemoveOrphans(ctx, s.sandboxes.OwnsRuntimeID); err != nil {
		return nil, fmt.Errorf("remove orphaned containers: %w", err)
	}
	// After the orphans: their layers are no longer in use.
	if err := s.images.GC(ctx, s.containers.LayerInUse); err != nil {
		s.log.Warn("image garbage collection at start-up failed; the next RemoveImage retries it", "err", err)
	}
	return s, nil
}

func (s *Service) lock(podID string) func() {
	m, _ := s.opMu.LoadOrStore(podID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// RunPodSandbox creates and starts a pod and returns its id.
func (s *Service) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	return s.sandboxes.Run(ctx, cfg, handler)
}

// StopPodSandbox stops the pod's containers, with no grace period (kubelet
// stops them itself, with theirs, first), then the pod: its network, pause
// process and namespaces. It is idempotent and succeeds for unknown pods.
func (s *Service) StopPodSandbox(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	return s.stop(ctx, id)
}

func (s *Service) stop(ctx context.Context, id string) error {
	if err := s.containers.StopPod(ctx, id); err != nil {
		return fmt.Errorf("stop containers of pod %s: %w", id, err)
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
	if err := s.containers.RemovePod(ctx, id); err != nil {
		return fmt.Errorf("remove containers of pod %s: %w", id, err)
	}
	if err := s.sandboxes.Remove(ctx, id); err != nil {
		return err
	}
	s.opMu.Delete(id)
	return nil
}

// CreateContainer makes a container in a ready pod, created, not started.
func (s *Service) CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	return s.containers.Create(ctx, podID, cfg, podCfg)
}

// StartContainer starts a created container.
func (s *Service) StartContainer(ctx context.Context, id string) error {
	return s.containers.Start(ctx, id)
}

// StopContainer stops a container: its stop signal, SIGKILL after timeout.
func (s *Service) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	return s.containers.Stop(ctx, id, timeout)
}

// UpdateContainerResources applies new resource limits to a container.
func (s *Service) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	return s.containers.UpdateResources(ctx, id, res)
}

// RemoveContainer removes a container, forcibly if it still runs.
func (s *Service) RemoveContainer(ctx context.Context, id string) error {
	return s.containers.Remove(ctx, id)
}

// RemoveImage removes an image and collects what nothing uses any more;
// layers that containers still use stay.
func (s *Service) RemoveImage(ctx context.Context, ref string) error {
	return s.images.Remove(ctx, ref, s.containers.LayerInUse)
}
