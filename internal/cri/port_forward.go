package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/sandbox"
)

// PortForward answers with a URL on the streaming server that forwards to
// ports inside the pod's network namespace.
func (s *Server) PortForward(ctx context.Context, r *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.Invalid("pod_sandbox_id is required")
	}
	for _, p := range r.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, errdefs.Invalid(fmt.Sprintf("port %d is not a valid TCP port", p))
		}
	}
	if s.Streams == nil {
		return nil, fmt.Errorf("the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	pod, err := s.Sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if pod.State != sandbox.Ready {
		return nil, errdefs.Precondition(fmt.Sprintf("pod sandbox %s is not ready", r.GetPodSandboxId()))
	}
	return s.Streams.GetPortForward(r)
}
