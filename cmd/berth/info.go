package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
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
		Use:     "version",
		Short:   "Show client and runtime versions",
		Long:    "Show berth's version and the runtime's name, version and CRI API version",
		Example: "  berth version",
		Args:    cobra.NoArgs,
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
		Use:   "info [SECTION]",
		Short: "Show the runtime's status and configuration",
		Long: "Print the runtime's status as crictl info does: one document with the sections\n" +
			"status, runtimeHandlers, features and what the runtime adds in its verbose info\n" +
			"(berthd: config, network). SECTION prints that section alone. -o table lists\n" +
			"the conditions and runtime handlers.",
		Args:    cobra.MaximumNArgs(1),
		Example: "  berth info\n  berth info config -o yaml",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			f := a.format("json")
			if f == "table" && len(args) == 0 {
				return printInfoTable(a, resp)
			}
			doc, err := infoSections(resp)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				sec, ok := doc[args[0]]
				if !ok {
					names := make([]string, 0, len(doc))
					for k := range doc {
						names = append(names, k)
					}
					sort.Strings(names)
					return fmt.Errorf("info: no section %q; there are %s", args[0], strings.Join(names, ", "))
				}
				if f == "table" {
					f = "yaml"
				}
				return printDoc(a.stdout, f, sec)
			}
			return printDoc(a.stdout, f, doc)
		},
	}
}

// infoSections lays out a verbose Status answer as crictl info does: the
// status, handlers and features, and each verbose info key as a section of
// its own (parsed when it is JSON).
func infoSections(resp *runtimeapi.StatusResponse) (map[string]any, error) {
	doc := map[string]any{}
	add := func(key string, m proto.Message) error {
		raw, err := protoJSON(m)
		if err != nil {
			return err
		}
		doc[key] = raw
		return nil
	}
	if err := add("status", resp.GetStatus()); err != nil {
		return nil, err
	}
	var handlers []json.RawMessage
	for _, h := range resp.GetRuntimeHandlers() {
		raw, err := protoJSON(h)
		if err != nil {
			return nil, err
		}
		handlers = append(handlers, raw)
	}
	doc["runtimeHandlers"] = handlers
	if resp.GetFeatures() != nil {
		if err := add("features", resp.GetFeatures()); err != nil {
			return nil, err
		}
	}
	for k, v := range resp.GetInfo() {
		if json.Valid([]byte(v)) {
			doc[k] = json.RawMessage(v)
		} else {
			doc[k] = v
		}
	}
	return doc, nil
}

func printInfoTable(a *app, resp *runtimeapi.StatusResponse) error {
	t := newTable(a.stdout)
	fmt.Fprintln(t, "CONDITION\tSTATUS\tREASON\tMESSAGE")
	for _, c := range resp.GetStatus().GetConditions() {
		fmt.Fprintf(t, "%s\t%t\t%s\t%s\n", c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage())
	}
	fmt.Fprintln(t)
	fmt.Fprintln(t, "RUNTIME HANDLER\tRECURSIVE RO MOUNTS\tUSER NAMESPACES")
	for _, h := range resp.GetRuntimeHandlers() {
		name := h.GetName()
		if name == "" {
			name = "(default)"
		}
		fmt.Fprintf(t, "%s\t%t\t%t\n", name, h.GetFeatures().GetRecursiveReadOnlyMounts(), h.GetFeatures().GetUserNamespaces())
	}
	return t.Flush()
}
