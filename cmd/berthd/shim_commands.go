package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/runtime"
)

// newRunscShimCommands are the hidden subcommands (one: runsc-shim) conmon reaches through a
// gVisor handler's shim script (see internal/runtime/runsc_shim.go).
func newRunscShimCommands() []*cobra.Command {
	shim := &cobra.Command{
		Use: runtime.RunscShimCommand + " RUNSC ARGS...", Hidden: true, DisableFlagParsing: true,
		Run: func(cmd *cobra.Command, args []string) { os.Exit(runtime.RunscShim(args)) },
	}
	return []*cobra.Command{shim}
}
