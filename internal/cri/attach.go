package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// Attach answers with a URL on the streaming server that joins the running
// container's stdio through its conmon.
func (s *Server) Attach(ctx context.Context, r *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.Invalid("container_id is required")
	}
	if err := s.streamable(r.GetContainerId()); err != nil {
		return nil, err
	}
	if r.GetStdin() {
		has, err := s.Containers.HasStdin(r.GetContainerId())
		if err != nil {
			return nil, err
		}
		if !has {
			return nil, errdefs.Precondition(fmt.Sprintf("container %s was not created with stdin; attach without stdin", r.GetContainerId()))
		}
	}
	return s.Streams.GetAttach(r)
}
