package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func logsCmd(a *app) *cobra.Command {
	var o struct {
		follow, timestamps bool
		tail               int
	}
	cmd := &cobra.Command{
		Use:   "logs CONTAINER",
		Short: "Print a container's log (read from its log file on this host)",
		Long: "Print a container's log file: its stdout lines to stdout, its stderr lines to stderr.\n" +
			"-f follows the file across log rotation until the container exits; -t adds timestamps",
		Args:    cobra.ExactArgs(1),
		Example: "  berth logs -f --tail 20 web",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			ids, err := a.resolveContainers(ctx, args)
			cancel()
			if err != nil {
				return err
			}
			return a.printLogs(cmd.Context(), ids[0], o.follow, o.tail, o.timestamps)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new output until the container exits")
	f.IntVar(&o.tail, "tail", -1, "print only the last N lines (-1 for all)")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "prefix each line with its RFC 3339 time")
	return cmd
}

// printLogs prints container id's log file; when following it stops once
// the container has exited (or is removed) and the file is drained.
func (a *app) printLogs(ctx context.Context, id string, follow bool, tail int, timestamps bool) error {
	return a.printLogsUntilExit(ctx, id, follow, tail, timestamps, nil)
}

// printLogsUntilExit is printLogs whose follow ends when w (when not nil)
// sees the container exit; where w cannot say, the runtime is asked.
func (a *app) printLogsUntilExit(ctx context.Context, id string, follow bool, tail int, timestamps bool, w *exitWatch) error {
	st, err := a.containerStatus(ctx, id)
	if err != nil {
		return err
	}
	path := st.GetLogPath()
	if path == "" {
		return fmt.Errorf("container %s has no log path", shortID(id))
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("container %s: log path %q is not absolute", shortID(id), path)
	}
	fl := &logFollower{
		path:   path,
		follow: follow,
		tail:   tail,
		out:    newLogWriter(a.stdout, a.stderr, timestamps),
		log:    a.log,
		exited: func(ctx context.Context) (bool, error) {
			if w != nil {
				if done, known := w.exited(); known {
					return done, nil
				}
			}
			st, err := a.containerStatus(ctx, id)
			if isNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			return st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED, nil
		},
	}
	if w != nil {
		fl.wake = w.wake
		// Where events cannot say, the exit is found by asking: often
		// enough that a short run does not wait long for its end.
		fl.poll = 100 * time.Millisecond
	}
	return fl.run(ctx)
}

// containerStatus fetches one container's status within --timeout.
func (a *app) containerStatus(parent context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	ctx, cancel, err := a.ctx(parent)
	if err != nil {
		return nil, err
	}
	defer cancel()
	resp, err := a.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", shortID(id), err)
	}
	return resp.GetStatus(), nil
}
