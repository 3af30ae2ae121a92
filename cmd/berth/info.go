package main

import (
	"fmt"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// format returns the --output format, or def when none was given.
func (a *app) format(def string) string {
	if a.output == "" {
		return def
	}
	return a.output
}

func versionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show client and runtime versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
			if err != nil {
				return fmt.Errorf("version: %w", err)
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, resp)
			}
			t := newTable(a.stdout)
			fmt.Fprintf(t, "Client Version:\t%s\n", version)
			fmt.Fprintf(t, "Version:\t%s\n", resp.GetVersion())
			fmt.Fprintf(t, "RuntimeName:\t%s\n", resp.GetRuntimeName())
			fmt.Fprintf(t, "RuntimeVersion:\t%s\n", resp.GetRuntimeVersion())
			fmt.Fprintf(t, "RuntimeApiVersion:\t%s\n", resp.GetRuntimeApiVersion())
			return t.Flush()
		},
	}
}

func infoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the runtime's status and configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if f := a.format("json"); f != "table" {
				doc, err := withInfo("status", resp.GetStatus(), resp.GetInfo())
				if err != nil {
					return err
				}
				return printDoc(a.stdout, f, doc)
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "CONDITION\tSTATUS\tREASON\tMESSAGE")
			for _, c := range resp.GetStatus().GetConditions() {
				fmt.Fprintf(t, "%s\t%t\t%s\t%s\n", c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage())
			}
			return t.Flush()
		},
	}
}
