package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// RemovePodSandbox is idempotent and succeeds for unknown pods.
func (s *Server) RemovePodSandbox(ctx context.Context, r *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.Invalid("pod_sandbox_id is required")
	}
	if err := s.Pods.RemovePodSandbox(ctx, r.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}
