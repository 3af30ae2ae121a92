package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/sandbox"
)

// PodSandboxStats reads the pod's cgroup (or sums its containers'), its
// network namespace's interface counters and its containers' stats.
func (s *Server) PodSandboxStats(ctx context.Context, r *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.Invalid("pod_sandbox_id is required")
	}
	p, err := s.Sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: criPodStats(s.Stats.Pod(p, s.containersByPod()[p.ID]))}, nil
}

// ListPodSandboxStats answers for every pod the filter matches; a filter
// naming an unknown pod matches nothing.
func (s *Server) ListPodSandboxStats(ctx context.Context, r *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: s.listPodStats(ctx, r.GetFilter())}, nil
}

func (s *Server) StreamPodSandboxStats(r *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	return sendBatches(s.listPodStats(stream.Context(), r.GetFilter()), func(b []*runtimeapi.PodSandboxStats) error {
		return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: b})
	})
}

func (s *Server) listPodStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) []*runtimeapi.PodSandboxStats {
	var pods []*sandbox.Sandbox
	for _, p := range s.Sandboxes.List() {
		if strings.HasPrefix(p.ID, f.GetId()) && matchLabels(p.Labels, f.GetLabelSelector()) {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 || ctx.Err() != nil {
		return nil
	}
	var out []*runtimeapi.PodSandboxStats
	for _, ps := range s.Stats.Pods(pods, s.containersByPod()) {
		out = append(out, criPodStats(ps))
	}
	return out
}

// containersByPod groups the containers by pod in one pass, so listing the
// stats of n pods does not scan the container list n times.
func (s *Server) containersByPod() map[string][]*container.Container {
	m := map[string][]*container.Container{}
	for _, c := range s.Containers.List() {
		m[c.PodID] = append(m[c.PodID], c)
	}
	return m
}
