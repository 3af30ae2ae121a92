package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// ContainerStats reads one container's cgroup; its writable layer's usage
// comes from the background-refreshed cache.
func (s *Server) ContainerStats(ctx context.Context, r *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.Invalid("container_id is required")
	}
	c, err := s.Containers.Get(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: criContainerStats(s.Stats.Container(c))}, nil
}

// ListContainerStats answers for every container the filter matches; a
// filter naming an unknown container or pod matches nothing.
func (s *Server) ListContainerStats(ctx context.Context, r *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	return &runtimeapi.ListContainerStatsResponse{Stats: s.listContainerStats(ctx, r.GetFilter())}, nil
}

func (s *Server) StreamContainerStats(r *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	return sendBatches(s.listContainerStats(stream.Context(), r.GetFilter()), func(b []*runtimeapi.ContainerStats) error {
		return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: b})
	})
}

func (s *Server) listContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	var out []*runtimeapi.ContainerStats
	for _, c := range s.Containers.List() {
		if ctx.Err() != nil {
			break
		}
		if !strings.HasPrefix(c.ID, f.GetId()) || !strings.HasPrefix(c.PodID, f.GetPodSandboxId()) {
			continue
		}
		if !matchLabels(c.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, criContainerStats(s.Stats.Container(c)))
	}
	return out
}
