package runtime

import (
	"bytes"
	"context"
	"os"
	"os/exec"
)

// StartWithIO starts a created container with the given stdio for the
// runtime. gVisor's runsc hands a sub-container (one joining a pod's
// sandbox) the stdio of `runsc start`, not of `runsc create`, so its start
// must carry the container's own streams (conmon's pipes).
func (r *cli) StartWithIO(ctx context.Context, id string, stdin, stdout, stderr *os.File) error {
	args := append(r.GlobalArgs(), "start", id)
	cmd := exec.CommandContext(ctx, r.path, args...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	// The runtime's own messages go to stderr too; keep a copy for the error.
	var msg bytes.Buffer
	cmd.Stderr = stderr
	if stderr == nil {
		cmd.Stderr = &msg
	}
	cmd.WaitDelay = rtWaitDelay
	if err := cmd.Run(); err != nil {
		return r.rtError(ctx, "start", id, rtMessage(msg.Bytes(), false), err)
	}
	return nil
}
