package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
)

// execSyncMaxOutput is the most stdout and stderr together may hold so that
// the response, with its protobuf framing (under 32 bytes), stays within
// the 16 MiB kubelet accepts.
const execSyncMaxOutput = MaxMsgSize - 64

// ExecSync runs a command in a running container to completion: kubelet's
// exec probes. Only the OCI runtime's exec runs; a timeout kills and reaps
// the process, then answers DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, r *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.Invalid("container_id is required")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.Invalid("cmd is required")
	}
	if r.GetTimeout() < 0 {
		return nil, errdefs.Invalid("timeout must not be negative")
	}
	maxOutput := execSyncMaxOutput
	if s.Config != nil {
		maxOutput = min(s.Config.ExecSyncMaxOutput, execSyncMaxOutput)
	}
	res, err := s.Containers.ExecSync(ctx, r.GetContainerId(), container.ExecSyncRequest{
		Cmd:       r.GetCmd(),
		Timeout:   time.Duration(r.GetTimeout()) * time.Second,
		MaxOutput: maxOutput,
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}
