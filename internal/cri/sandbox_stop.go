package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// StopPodSandbox is idempotent and succeeds for unknown pods: kubelet calls
// it twice per pod, the second time from garbage collection.
func (s *Server) StopPodSandbox(ctx context.Context, r *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.Invalid("pod_sandbox_id is required")
	}
	if err := s.Pods.StopPodSandbox(ctx, r.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}
