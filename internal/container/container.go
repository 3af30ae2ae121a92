// Package container runs containers inside pod sandboxes: rootfs snapshot,
// OCI spec, a conmon monitor per container, and the lifecycle CRI asks for
// (create, start, stop, remove, status, resource updates, log reopen).
package container

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/names"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/snapshot"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/store"
	"github.com/berth-project/berth/internal/usernsdir"
)

// State is a container's lifecycle state.
type State string

const (
	Created State = "created"
	Running State = "running"
	Exited  State = "exited"
	Unknown State = "unknown"
)

// Reasons reported for an exited container, as kubelet expects them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// Config configures the service.
type Config struct {
	Store     *store.Store
	Root      string   // persistent dir: writable layers under <Root>/containers
	StateDir  string   // bundles under <StateDir>/containers, exits under <StateDir>/exits
	Runtimes  Runtimes // the runtime handlers
	Sandboxes Sandboxes
	Images    Images
	// Host is the node's facts for spec generation, built once at start;
	// each handler adds its own (hostConfig).
	Host spec.HostConfig
	// CgroupDriver is cgroupfs or systemd; it shapes linux.cgroupsPath.
	CgroupDriver string
	Logger       *slog.Logger
	Events       *events.Bus // lifecycle events; nil: none
	// UsernsDir holds the rootfs mount points of containers in user
	// namespaces (their remapped root must reach them); others have theirs
	// in their bundle.
	UsernsDir usernsdir.Dir

	rootfs rootfs // nil: overlay snapshots (tests fake it)
}

// Sandboxes is what the service needs of the pods (sandbox.Service): the
// pod a container is made in. Which other runtime ids are a pod's is the
// pod layer's to say (see RemoveOrphans).
type Sandboxes interface {
	Get(id string) (*sandbox.Sandbox, error)
}

// Images is what the service needs of the image store (image.Service).
type Images interface {
	Get(ref string) (*image.Image, error)
	// LeaseImage resolves ref and keeps its layers from removal until the
	// lease is released.
	LeaseImage(ref string) (*image.Image, *image.Lease, error)
	LayerDirs(img *image.Image) []string
	// HoldImage resolves ref and keeps it from removal while holder (a
	// container with an image volume) exists; Unhold lets go of them all.
	HoldImage(ref, holder string) (*image.Image, error)
	Unhold(holder string)
}

// rootfs makes and removes container root filesystems; the snapshot
// package's overlay mounts, behind an interface so lifecycle tests need no
// mounts.
type rootfs interface {
	Prepare(dir, target string, lowers []string, idmap *snapshot.IDMap) error
	Remove(dir, target string) error
	IsMounted(path string) bool
	// MountImage mounts an image volume read-only; Unmount detaches it.
	MountImage(target string, lowers []string, idmap *snapshot.IDMap, scratch string) error
	Unmount(target string) error
}

// overlayRootfs is rootfs with the snapshot package.
type overlayRootfs struct{}

func (overlayRootfs) Prepare(dir, target string, lowers []string, idmap *snapshot.IDMap) error {
	return snapshot.Prepare(dir, target, lowers, idmap)
}
func (overlayRootfs) MountImage(target string, lowers []string, idmap *snapshot.IDMap, scratch string) error {
	return snapshot.MountImage(target, lowers, idmap, scratch)
}
func (overlayRootfs) Unmount(target string) error     { return snapshot.Unmount(target) }
func (overlayRootfs) Remove(dir, target string) error { return snapshot.Remove(dir, target) }
func (overlayRootfs) IsMounted(path string) bool      { return snapshot.IsMounted(path) }

// Service owns all containers.
type Service struct {
	cfg     Config
	log     *slog.Logger
	names   *names.Registry
	records *table
	// quarantined are ids whose records could not be read at start: what
	// is on the host under them is left alone, not removed as an orphan.
	quarantined map[string]bool
	// startLists are the runtimes' container lists taken at start, kept
	// for RemoveOrphans (by handler name, then id).
	startLists map[string]map[string]runtime.State

	mu         sync.RWMutex
	containers map[string]*Container
	exited     map[string]chan struct{} // closed when the container's exit is recorded
	layerUse   map[string]int           // chain ID -> containers using it

	opMu sync.Map // id -> *sync.Mutex: serialises lifecycle steps of one container
}

func (s *Service) bundleDir(id string) string   { return filepath.Join(s.cfg.StateDir, "containers", id) }
func (s *Service) snapshotDir(id string) string { return filepath.Join(s.cfg.Root, "containers", id) }

// rootfs is the container's rootfs mount point: in the user namespace
// dir when create made it there, else in the bundle.
func (s *Service) rootfs(id string) string {
	if s.cfg.UsernsDir.Has(id) {
		return s.cfg.UsernsDir.Rootfs(id)
	}
	return filepath.Join(s.bundleDir(id), "rootfs")
}

// Quarantined says whether id's record was set aside as unreadable at start.
func (s *Service) Quarantined(id string) bool { return s.quarantined[id] }

func (s *Service) lock(id string) func() {
	m, _ := s.opMu.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Get returns the container with the given id.
func (s *Service) Get(id string) (*Container, error) {
	s.mu.RLock()
	c, ok := s.containers[id]
	s.mu.RUnlock()
	if !ok {
		return nil, errdefs.NotFound(fmt.Sprintf("container %q not found", id))
	}
	return c, nil
}

// List returns all containers, newest first; it never touches disk.
func (s *Service) List() []*Container {
	s.mu.RLock()
	out := make([]*Container, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt > out[j].CreatedAt })
	return out
}

// podContainers lists the containers of one pod.
func (s *Service) podContainers(podID string) []*Container {
	var out []*Container
	for _, c := range s.List() {
		if c.PodID == podID {
			out = append(out, c)
		}
	}
	return out
}

// publishNew records a new container, its metadata and first status, and
// makes it visible.
func (s *Service) publishNew(c *Container) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	st, err := c.status()
	if err != nil {
		return err
	}
	if err := s.records.Create(c.ID, m, st); err != nil {
		return err
	}
	s.show(c)
	return nil
}

// publish records a new state of a known container (its status only:
// metadata never changes) and makes it visible. A container removed
// meanwhile stays removed (store.ErrNoRecord).
func (s *Service) publish(c *Container) error {
	st, err := c.status()
	if err != nil {
		return err
	}
	if err := s.records.PutStatus(c.ID, st); err != nil {
		return err
	}
	s.show(c)
	return nil
}

// show makes c the visible version of its container.
func (s *Service) show(c *Container) {
	s.mu.Lock()
	if _, existed := s.containers[c.ID]; !existed {
		for _, l := range c.Layers {
			s.layerUse[l]++
		}
	}
	s.containers[c.ID] = c
	s.mu.Unlock()
}

func (s *Service) forget(c *Container) {
	s.mu.Lock()
	if _, ok := s.containers[c.ID]; ok {
		for _, l := range c.Layers {
			if s.layerUse[l]--; s.layerUse[l] <= 0 {
				delete(s.layerUse, l)
			}
		}
	}
	delete(s.containers, c.ID)
	delete(s.exited, c.ID)
	s.mu.Unlock()
	s.opMu.Delete(c.ID)
}

// LayerInUse tells the image store whether a container still uses a layer.
func (s *Service) LayerInUse(chainID string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.layerUse[chainID] > 0
}

// exitChan returns the channel closed when id's exit is recorded.
func (s *Service) exitChan(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.exited[id]
	if !ok {
		ch = make(chan struct{})
		s.exited[id] = ch
	}
	return ch
}

func (s *Service) markExited(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.exited[id]
	if !ok {
		ch = make(chan struct{})
		s.exited[id] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Key is the reservation key of a container: unique within its pod.
func Key(podID string, md *runtimeapi.ContainerMetadata) string {
	return fmt.Sprintf("%s_%s_%d", podID, md.GetName(), md.GetAttempt())
}
