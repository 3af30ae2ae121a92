package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func attachCmd(a *app) *cobra.Command {
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "attach [-i] [-t] CONTAINER",
		Short: "Attach to a running container's output (and input with -i)",
		Long: "Join a running container's stdio through berthd's streaming server (CRI Attach).\n" +
			"-i passes this terminal's input to the container (it must have been created with stdin),\n" +
			"-t for a container created with a terminal. When the container exits, berth exits with\n" +
			"its exit code; Ctrl-C (without -t) detaches and leaves it running.",
		Args:    cobra.ExactArgs(1),
		Example: "  berth attach web\n  berth attach -it shell",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			ids, err := a.resolveContainers(ctx, args)
			if err != nil {
				cancel()
				return err
			}
			id := ids[0]
			resp, err := a.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: interactive, Tty: tty, Stdout: true, Stderr: !tty})
			cancel()
			if err != nil {
				return fmt.Errorf("attaching to %s: %w", shortID(id), err)
			}
			code, err := a.stream(cmd.Context(), resp.GetUrl(), streamOpts{stdin: interactive, stdout: true, stderr: !tty, tty: tty})
			if err != nil {
				return fmt.Errorf("attached to %s: %w", shortID(id), err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return a.exitStatusOf(cmd.Context(), id)
		},
	}
	cmd.Flags().BoolVarP(&interactive, "stdin", "i", false, "pass stdin to the container")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "the container has a terminal: raw mode and resizes")
	return cmd
}

// exitStatusOf passes on the exit code of a container whose output ended:
// berthd may record the exit a moment after the streams close, so it waits
// a little for it (nil if the container still runs).
func (a *app) exitStatusOf(parent context.Context, id string) error {
	var st *runtimeapi.ContainerStatus
	for deadline := time.Now().Add(5 * time.Second); ; {
		var err error
		if st, err = a.containerStatus(parent, id); err != nil {
			return err
		}
		if st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED && st.GetExitCode() != 0 {
		return &exitError{code: int(st.GetExitCode())}
	}
	return nil
}
