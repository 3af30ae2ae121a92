package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/store"
)

// Container is a container as berthd keeps it in memory; immutable once
// published (copy on write). It is stored as two records (recordMeta,
// written once at create, and recordStatus, rewritten on state changes);
// the CRI blobs are decoded once, at create or load.
type Container struct {
	// Written once, at create.
	ID          string
	PodID       string
	CreatedAt   int64
	ImageID     string   // sha256:<config digest>
	ImageRef    string   // what status reports as image_ref
	Layers      []string // chain IDs the rootfs uses
	LogPath     string   // absolute
	Runtime     string
	CgroupsPath string
	StopSignal  string
	Config      *runtimeapi.ContainerConfig // the CRI config, decoded
	User        *runtimeapi.ContainerUser   // nil: not known

	// Taken from Config (not stored twice).
	Key         string // reservation key
	Name        string
	Attempt     uint32
	Image       string // as the client asked for it
	Labels      map[string]string
	Annotations map[string]string

	// Status: changes with the container's state.
	State      State
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string
	Pid        int
	Resources  *runtimeapi.LinuxContainerResources // last applied; nil: none given
	// RuntimeDeleted: the runtime's state was deleted after the exit, so
	// removal has no runtime call left to make.
	RuntimeDeleted bool

	// exec is the process template of execs, shared by every copy of the
	// record: read from the bundle at most once.
	exec *execTemplate
}

// recordVersion is the schema version of container records.
const recordVersion = 1

// recordMeta is what is stored once, when a container is created.
type recordMeta struct {
	PodID       string          `json:"podID"`
	CreatedAt   int64           `json:"createdAt"`
	ImageID     string          `json:"imageID"`
	ImageRef    string          `json:"imageRef"`
	Layers      []string        `json:"layers"`
	LogPath     string          `json:"logPath,omitempty"`
	Runtime     string          `json:"runtime"`
	CgroupsPath string          `json:"cgroupsPath,omitempty"`
	StopSignal  string          `json:"stopSignal,omitempty"`
	User        json.RawMessage `json:"user,omitempty"` // protojson ContainerUser
	Config      json.RawMessage `json:"config"`         // protojson ContainerConfig
}

// recordStatus is what is stored again on every state change.
type recordStatus struct {
	State      State           `json:"state"`
	StartedAt  int64           `json:"startedAt,omitempty"`
	FinishedAt int64           `json:"finishedAt,omitempty"`
	ExitCode   int32           `json:"exitCode,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Message    string          `json:"message,omitempty"`
	Pid        int             `json:"pid,omitempty"`
	Resources  json.RawMessage `json:"resources,omitempty"` // protojson LinuxContainerResources

	RuntimeDeleted bool `json:"runtimeDeleted,omitempty"`
}

type table = store.Table[recordMeta, recordStatus]

func openTable(st *store.Store, cfg Config) (*table, error) {
	return store.NewTable(st, store.TableOptions[recordMeta, recordStatus]{
		Name: "containers", Version: recordVersion, Logger: cfg.Logger,
		// Records from before versioning held both parts in one object.
		Legacy: store.LegacyFlat[recordMeta, recordStatus],
	})
}

// decodeOpts tolerates fields a newer CRI API added: a record must outlive
// a downgrade.
var decodeOpts = protojson.UnmarshalOptions{DiscardUnknown: true}

// fromRecord builds the in-memory container, decoding the CRI blobs.
func fromRecord(id string, m *recordMeta, s *recordStatus) (*Container, error) {
	c := &Container{
		ID: id, PodID: m.PodID, CreatedAt: m.CreatedAt, ImageID: m.ImageID, ImageRef: m.ImageRef,
		Layers: m.Layers, LogPath: m.LogPath, Runtime: m.Runtime, CgroupsPath: m.CgroupsPath,
		StopSignal: m.StopSignal, Config: &runtimeapi.ContainerConfig{}, exec: &execTemplate{},
	}
	if err := decodeOpts.Unmarshal(m.Config, c.Config); err != nil {
		return nil, fmt.Errorf("CRI config: %w", err)
	}
	if len(m.User) > 0 {
		c.User = &runtimeapi.ContainerUser{}
		if err := decodeOpts.Unmarshal(m.User, c.User); err != nil {
			return nil, fmt.Errorf("user: %w", err)
		}
	}
	if err := c.setStatus(s); err != nil {
		return nil, err
	}
	c.fillFromConfig()
	return c, nil
}

// fillFromConfig sets the fields that are the CRI config's.
func (c *Container) fillFromConfig() {
	md := c.Config.GetMetadata()
	c.Key = Key(c.PodID, md)
	c.Name = md.GetName()
	c.Attempt = md.GetAttempt()
	c.Image = c.Config.GetImage().GetImage()
	c.Labels = c.Config.GetLabels()
	c.Annotations = c.Config.GetAnnotations()
}

func (c *Container) setStatus(s *recordStatus) error {
	c.State, c.StartedAt, c.FinishedAt, c.ExitCode = s.State, s.StartedAt, s.FinishedAt, s.ExitCode
	c.Reason, c.Message, c.Pid = s.Reason, s.Message, s.Pid
	c.RuntimeDeleted = s.RuntimeDeleted
	c.Resources = nil
	if len(s.Resources) > 0 {
		c.Resources = &runtimeapi.LinuxContainerResources{}
		if err := decodeOpts.Unmarshal(s.Resources, c.Resources); err != nil {
			return fmt.Errorf("resources: %w", err)
		}
	}
	switch s.State {
	case Created, Running, Exited, Unknown:
	default:
		return fmt.Errorf("unknown state %q", s.State)
	}
	return nil
}

func (c *Container) meta() (*recordMeta, error) {
	m := &recordMeta{
		PodID: c.PodID, CreatedAt: c.CreatedAt, ImageID: c.ImageID, ImageRef: c.ImageRef, Layers: c.Layers,
		LogPath: c.LogPath, Runtime: c.Runtime, CgroupsPath: c.CgroupsPath, StopSignal: c.StopSignal,
	}
	var err error
	if m.Config, err = protojson.Marshal(c.Config); err != nil {
		return nil, fmt.Errorf("encode container %s config: %w", c.ID, err)
	}
	if c.User != nil {
		if m.User, err = protojson.Marshal(c.User); err != nil {
			return nil, fmt.Errorf("encode container %s user: %w", c.ID, err)
		}
	}
	return m, nil
}

func (c *Container) status() (*recordStatus, error) {
	s := &recordStatus{
		State: c.State, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, ExitCode: c.ExitCode,
		Reason: c.Reason, Message: c.Message, Pid: c.Pid, RuntimeDeleted: c.RuntimeDeleted,
	}
	if c.Resources != nil {
		var err error
		if s.Resources, err = protojson.Marshal(c.Resources); err != nil {
			return nil, fmt.Errorf("encode container %s resources: %w", c.ID, err)
		}
	}
	return s, nil
}

// execTemplate is the process execs in a container start from: the
// container's own, from its OCI spec. It is read from the bundle at most
// once per container (never at load: most containers never see an exec).
type execTemplate struct {
	mu   sync.Mutex
	proc *specs.Process
}

// newExecTemplate is the template of a container just created from spec.
func newExecTemplate(spec *specs.Spec) *execTemplate {
	t := &execTemplate{}
	if spec != nil && spec.Process != nil {
		p := *spec.Process
		t.proc = &p
	}
	return t
}

// process returns the template, reading the bundle's config.json the first
// time after a restart. Callers copy it before changing it.
func (t *execTemplate) process(bundle string) (*specs.Process, error) {
	if t == nil {
		t = &execTemplate{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proc != nil {
		return t.proc, nil
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("reading its OCI spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("decoding its OCI spec: %w", err)
	}
	if spec.Process == nil {
		return nil, errors.New("its OCI spec has no process")
	}
	t.proc = spec.Process
	return t.proc, nil
}
