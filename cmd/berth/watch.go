package main

import (
	"bytes"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// withWatch gives a listing verb --watch: it prints the listing again every
// --interval until interrupted; on a terminal each listing replaces the last.
func withWatch(a *app, cmd *cobra.Command) *cobra.Command {
	var watch bool
	var interval time.Duration
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if !watch {
			return run(c, args)
		}
		ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		c.SetContext(ctx)
		out := a.stdout
		defer func() { a.stdout = out }()
		tty := isTerminal(out)
		for first := true; ; first = false {
			var buf bytes.Buffer
			a.stdout = &buf
			err := run(c, args)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			switch {
			case tty:
				out.Write([]byte("\x1b[H\x1b[2J")) // home, clear screen
			case !first:
				out.Write([]byte("\n"))
			}
			out.Write(buf.Bytes())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
		}
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "print again every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch prints")
	return cmd
}

// isTerminal reports whether w is a terminal (colour, screen control and
// progress bars only there).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
