package main

import (
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func execCmd(a *app) *cobra.Command {
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] CONTAINER CMD [ARG...]",
		Short: "Run a command in a running container and exit with its status",
		Long: "Run a command in a running container (CRI ExecSync): its output is printed when it ends,\n" +
			"and berth exits with its exit code. --timeout, when given, bounds the command.\n" +
			"With -i or -t the command runs through berthd's streaming server (CRI Exec): stdin is\n" +
			"passed through, and -t gives it a terminal that follows this one's size.",
		Args:    cobra.MinimumNArgs(2),
		Example: "  berth exec web cat /etc/hostname",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			ids, err := a.resolveContainers(ctx, args[:1])
			cancel()
			if err != nil {
				return err
			}
			if interactive || tty {
				code, err := a.streamExec(cmd.Context(), ids[0], args[1:], tty)
				if err != nil {
					return fmt.Errorf("exec in %s: %w", shortID(ids[0]), err)
				}
				if code != 0 {
					return &exitError{code: code}
				}
				return nil
			}
			// The runtime enforces the command's timeout; the request
			// deadline leaves it room to answer.
			var secs int64
			if a.timeoutSet() && a.timeout > 0 {
				secs = int64(math.Ceil(a.timeout.Seconds()))
			}
			ctx, cancel, err = a.longCtx(cmd.Context(), 5*time.Second)
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ids[0], Cmd: args[1:], Timeout: secs})
			if err != nil {
				return fmt.Errorf("exec in %s: %w", shortID(ids[0]), err)
			}
			if _, err := a.stdout.Write(resp.GetStdout()); err != nil {
				return err
			}
			if _, err := a.stderr.Write(resp.GetStderr()); err != nil {
				return err
			}
			if code := resp.GetExitCode(); code != 0 {
				return &exitError{code: int(code)}
			}
			return nil
		},
	}
	// Everything after CONTAINER belongs to the command, flags included.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "pass stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	return cmd
}
