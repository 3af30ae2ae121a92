package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
)

// Streamer hands out the streaming server's single-use URLs.
type Streamer interface {
	GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// Exec answers with a URL on the streaming server where the command runs
// once a client connects.
func (s *Server) Exec(ctx context.Context, r *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.Invalid("container_id is required")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.Invalid("cmd is required")
	}
	if err := s.streamable(r.GetContainerId()); err != nil {
		return nil, err
	}
	return s.Streams.GetExec(r)
}

// streamable checks the streaming server is up and the container runs, so
// the caller learns of a bad container now rather than from a URL that
// fails.
func (s *Server) streamable(id string) error {
	if s.Streams == nil {
		return fmt.Errorf("the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	c, err := s.Containers.Get(id)
	if err != nil {
		return err
	}
	if c.State != container.Running {
		return errdefs.Precondition(fmt.Sprintf("container %s is %s, not running", id, c.State))
	}
	return nil
}
