package cri

import (
	"strings"

	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox answers from memory: kubelet calls it every ~0.6 s.
func (s *Server) ListPodSandbox(ctx context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: s.listPods(r.GetFilter())}, nil
}

func (s *Server) StreamPodSandboxes(r *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	return sendBatches(s.listPods(r.GetFilter()), func(b []*runtimeapi.PodSandbox) error {
		return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: b})
	})
}

func (s *Server) listPods(f *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	var out []*runtimeapi.PodSandbox
	for _, p := range s.Sandboxes.List() {
		if !strings.HasPrefix(p.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && podState(p) != f.GetState().GetState() {
			continue
		}
		if !matchLabels(p.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, podSummary(p))
	}
	return out
}

// matchLabels is CRI's label selector: every selector pair must be present.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// streamBatch bounds one streamed message: the point of the streamed list
// RPCs is to stay under gRPC's message size limit on large nodes.
const streamBatch = 256

// sendBatches sends items in messages of at most streamBatch items.
func sendBatches[T any](items []T, send func([]T) error) error {
	for len(items) > 0 {
		n := min(len(items), streamBatch)
		if err := send(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
