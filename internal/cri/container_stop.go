package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// StopContainer is idempotent and succeeds for unknown containers.
func (s *Server) StopContainer(ctx context.Context, r *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.Invalid("container_id is required")
	}
	if r.GetTimeout() < 0 {
		return nil, errdefs.Invalid("timeout must not be negative")
	}
	if err := s.Pods.StopContainer(ctx, r.GetContainerId(), time.Duration(r.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}
