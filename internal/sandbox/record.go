package sandbox

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/store"
)

// Sandbox is a pod as berthd keeps it in memory. Records are immutable once
// published: updates replace the whole value (copy on write), so readers
// never lock. It is stored as two records (recordMeta, written once at
// create, and recordStatus, rewritten when the pod stops); the CRI config
// is decoded once, at create or load. The JSON tags shape the verbose
// status only.
type Sandbox struct {
	// Written once, at create.
	ID             string `json:"id"`
	CreatedAt      int64  `json:"createdAt"` // unix nanoseconds
	RuntimeHandler string `json:"runtimeHandler"`
	CgroupParent   string `json:"cgroupParent"` // the config's, or the default at create
	// BoundedFiles: the pod's hostname, hosts and resolv.conf are in
	// files/, a size-limited tmpfs (pods made by older berthds have them
	// in the pod dir itself).
	BoundedFiles  bool                         `json:"boundedFiles,omitempty"`
	IP            string                       `json:"ip,omitempty"`
	AdditionalIPs []string                     `json:"additionalIPs,omitempty"`
	Config        *runtimeapi.PodSandboxConfig `json:"-"` // the CRI config, decoded

	// Taken from Config (not stored twice).
	Key          string            `json:"key"` // name reservation key
	Name         string            `json:"name"`
	UID          string            `json:"uid"`
	Namespace    string            `json:"namespace"`
	Attempt      uint32            `json:"attempt"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Hostname     string            `json:"hostname"`
	LogDirectory string            `json:"logDirectory,omitempty"`
	HostNetwork  bool              `json:"hostNetwork,omitempty"`
	HostIPC      bool              `json:"hostIPC,omitempty"`
	HostPID      bool              `json:"hostPID,omitempty"`
	PIDMode      string            `json:"pidMode,omitempty"` // CRI NamespaceMode name for pid

	// Status: changes when the pod stops.
	State      State             `json:"state"`
	Namespaces map[string]string `json:"namespaces,omitempty"` // "net"/"ipc"/"uts"/"pid" -> pinned file
	// Resources are the pod-level resources of the last
	// UpdatePodSandboxResources (pod_sandbox_id unset); nil: the config's.
	Resources *runtimeapi.UpdatePodSandboxResourcesRequest `json:"-"`
}

// recordVersion is the schema version of pod records.
const recordVersion = 1

// recordMeta is what is stored once, when a pod is created.
type recordMeta struct {
	CreatedAt      int64           `json:"createdAt"`
	RuntimeHandler string          `json:"runtimeHandler"`
	CgroupParent   string          `json:"cgroupParent"`
	BoundedFiles   bool            `json:"boundedFiles,omitempty"`
	IP             string          `json:"ip,omitempty"`
	AdditionalIPs  []string        `json:"additionalIPs,omitempty"`
	Config         json.RawMessage `json:"config"` // protojson PodSandboxConfig
}

// recordStatus is what is stored again when the pod's state changes.
type recordStatus struct {
	State      State             `json:"state"`
	Namespaces map[string]string `json:"namespaces,omitempty"`
	Resources  json.RawMessage   `json:"resources,omitempty"` // protojson UpdatePodSandboxResourcesRequest
}

type table = store.Table[recordMeta, recordStatus]

func openTable(st *store.Store, cfg Config) (*table, error) {
	return store.NewTable(st, store.TableOptions[recordMeta, recordStatus]{
		Name: "sandboxes", Version: recordVersion, Logger: cfg.Logger,
		// Records from before versioning held both parts in one object.
		Legacy: store.LegacyFlat[recordMeta, recordStatus],
	})
}

// decodeOpts tolerates fields a newer CRI API added: a record must outlive
// a downgrade.
var decodeOpts = protojson.UnmarshalOptions{DiscardUnknown: true}

// fromRecord builds the in-memory pod, decoding its CRI config.
func fromRecord(id string, m *recordMeta, s *recordStatus) (*Sandbox, error) {
	p := &Sandbox{
		ID: id, CreatedAt: m.CreatedAt, RuntimeHandler: m.RuntimeHandler, CgroupParent: m.CgroupParent,
		BoundedFiles: m.BoundedFiles, IP: m.IP, AdditionalIPs: m.AdditionalIPs,
		Config: &runtimeapi.PodSandboxConfig{}, State: s.State, Namespaces: s.Namespaces,
	}
	if err := decodeOpts.Unmarshal(m.Config, p.Config); err != nil {
		return nil, fmt.Errorf("CRI config: %w", err)
	}
	if len(s.Resources) != 0 {
		p.Resources = &runtimeapi.UpdatePodSandboxResourcesRequest{}
		if err := decodeOpts.Unmarshal(s.Resources, p.Resources); err != nil {
			return nil, fmt.Errorf("pod resources: %w", err)
		}
	}
	if p.State != Ready && p.State != NotReady {
		return nil, fmt.Errorf("unknown state %q", p.State)
	}
	p.fillFromConfig()
	return p, nil
}

// fillFromConfig sets the fields that are the CRI config's.
func (p *Sandbox) fillFromConfig() {
	cfg := p.Config
	md := cfg.GetMetadata()
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	p.Key = Key(md)
	p.Name, p.UID, p.Namespace, p.Attempt = md.GetName(), md.GetUid(), md.GetNamespace(), md.GetAttempt()
	p.Labels, p.Annotations = cfg.GetLabels(), cfg.GetAnnotations()
	p.Hostname, p.LogDirectory = cfg.GetHostname(), cfg.GetLogDirectory()
	p.HostNetwork = nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE
	p.HostIPC = nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE
	p.HostPID = nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE
	p.PIDMode = nsOpts.GetPid().String()
}

func (p *Sandbox) meta() (*recordMeta, error) {
	m := &recordMeta{
		CreatedAt: p.CreatedAt, RuntimeHandler: p.RuntimeHandler, CgroupParent: p.CgroupParent,
		BoundedFiles: p.BoundedFiles, IP: p.IP, AdditionalIPs: p.AdditionalIPs,
	}
	var err error
	if m.Config, err = protojson.Marshal(p.Config); err != nil {
		return nil, fmt.Errorf("encode pod %s config: %w", p.ID, err)
	}
	return m, nil
}

func (p *Sandbox) status() (*recordStatus, error) {
	st := &recordStatus{State: p.State, Namespaces: p.Namespaces}
	if p.Resources != nil {
		var err error
		if st.Resources, err = protojson.Marshal(p.Resources); err != nil {
			return nil, fmt.Errorf("encode pod %s resources: %w", p.ID, err)
		}
	}
	return st, nil
}
