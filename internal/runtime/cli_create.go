package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
)

// Create creates a container from bundle with no monitor: its stdio is
// /dev/null and nothing waits for it. berth uses it only for a pod's pause
// process, whose exit status nobody needs. extra are global args for this
// create only.
//
// The runtime's messages go to a log file, not a pipe: the container's init
// inherits the runtime's stdio, and a pipe held by it would never reach EOF.
func (r *cli) Create(ctx context.Context, id, bundle string, extra ...string) error {
	logPath := filepath.Join(bundle, "runtime-create.log")
	args := append(append(r.GlobalArgs(), extra...), "--log", logPath, "create", "--bundle", bundle, id)
	cmd := exec.CommandContext(ctx, r.path, args...)
	cmd.WaitDelay = rtWaitDelay
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		return r.rtError(ctx, "create", id, rtMessage(out, false), err)
	}
	os.Remove(logPath)
	return nil
}
