package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers answers from memory: kubelet calls it every ~0.6 s.
func (s *Server) ListContainers(ctx context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: s.listContainers(r.GetFilter())}, nil
}

func (s *Server) StreamContainers(r *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	return sendBatches(s.listContainers(r.GetFilter()), func(b []*runtimeapi.Container) error {
		return stream.Send(&runtimeapi.StreamContainersResponse{Containers: b})
	})
}

func (s *Server) listContainers(f *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for _, c := range s.Containers.List() {
		if !strings.HasPrefix(c.ID, f.GetId()) || !strings.HasPrefix(c.PodID, f.GetPodSandboxId()) {
			continue
		}
		if f.GetState() != nil && containerState(c) != f.GetState().GetState() {
			continue
		}
		if !matchLabels(c.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, containerSummary(c))
	}
	return out
}
