package cri

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/sandbox"
)

func (s *Server) PodSandboxStatus(ctx context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.Invalid("pod_sandbox_id is required")
	}
	// Taken before the records are read, so the statuses are at least as
	// new as the timestamp: kubelet's Evented PLEG keeps the newest status
	// by this time and, when it is set, takes containers_statuses as the
	// pod's whole list of containers.
	now := time.Now().UnixNano()
	p, err := s.Sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	resp := podSandboxStatusResponse(p, s.Containers.List(), now)
	if r.GetVerbose() {
		cfg, err := protojson.Marshal(p.Config)
		if err != nil {
			return nil, err
		}
		rec, err := json.Marshal(struct {
			*sandbox.Sandbox
			Config json.RawMessage `json:"config"`
		}{p, cfg})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(rec)}
	}
	return resp, nil
}

// podSandboxStatusResponse is p's status with the statuses of its
// containers (all of them, exited ones too, as kubelet's relist would find
// them), recorded at the time at (Unix nanoseconds).
func podSandboxStatusResponse(p *sandbox.Sandbox, all []*container.Container, at int64) *runtimeapi.PodSandboxStatusResponse {
	resp := &runtimeapi.PodSandboxStatusResponse{Status: podStatus(p), Timestamp: at}
	for _, c := range all {
		if c.PodID != p.ID {
			continue
		}
		resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(c))
	}
	return resp
}

func podState(p *sandbox.Sandbox) runtimeapi.PodSandboxState {
	if p.State == sandbox.Ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func podMetadata(p *sandbox.Sandbox) *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: p.Name, Uid: p.UID, Namespace: p.Namespace, Attempt: p.Attempt}
}

func podStatus(p *sandbox.Sandbox) *runtimeapi.PodSandboxStatus {
	mode := func(host bool) runtimeapi.NamespaceMode {
		if host {
			return runtimeapi.NamespaceMode_NODE
		}
		return runtimeapi.NamespaceMode_POD
	}
	pid := runtimeapi.NamespaceMode(runtimeapi.NamespaceMode_value[p.PIDMode])
	st := &runtimeapi.PodSandboxStatus{
		Id:        p.ID,
		Metadata:  podMetadata(p),
		State:     podState(p),
		CreatedAt: p.CreatedAt,
		Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: p.IP},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: mode(p.HostNetwork),
			Pid:     pid,
			Ipc:     mode(p.HostIPC),
		}}},
		Labels:         p.Labels,
		Annotations:    p.Annotations,
		RuntimeHandler: p.RuntimeHandler,
	}
	for _, ip := range p.AdditionalIPs {
		st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
	}
	return st
}

func podSummary(p *sandbox.Sandbox) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:             p.ID,
		Metadata:       podMetadata(p),
		State:          podState(p),
		CreatedAt:      p.CreatedAt,
		Labels:         p.Labels,
		Annotations:    p.Annotations,
		RuntimeHandler: p.RuntimeHandler,
	}
}
