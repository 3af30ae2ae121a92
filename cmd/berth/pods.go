package main

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// parseLabels turns repeated k=v flags into a label selector.
func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

// compileFilter compiles a --name/--namespace pattern; empty matches all.
func compileFilter(flag, pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return re, nil
}

func podStateFilter(s string) (*runtimeapi.PodSandboxStateValue, error) {
	switch strings.ToLower(s) {
	case "":
		return nil, nil
	case "ready", "sandbox_ready":
		return &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}, nil
	case "notready", "sandbox_notready":
		return &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}, nil
	}
	return nil, fmt.Errorf("--state %q: want ready or notready", s)
}

func podsCmd(a *app) *cobra.Command {
	var o struct {
		name, namespace, state, id string
		labels                     []string
		quiet                      bool
	}
	cmd := &cobra.Command{
		Use:     "pods",
		Short:   "List pod sandboxes",
		Args:    cobra.NoArgs,
		Example: "  berth pods --namespace kube-system --state ready",
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := podStateFilter(o.state)
			if err != nil {
				return err
			}
			labels, err := parseLabels(o.labels)
			if err != nil {
				return err
			}
			nameRE, err := compileFilter("name", o.name)
			if err != nil {
				return err
			}
			nsRE, err := compileFilter("namespace", o.namespace)
			if err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
				Filter: &runtimeapi.PodSandboxFilter{State: state, LabelSelector: labels},
			})
			if err != nil {
				return fmt.Errorf("listing pods: %w", err)
			}
			var pods []*runtimeapi.PodSandbox
			for _, p := range resp.GetItems() {
				md := p.GetMetadata()
				if (nameRE != nil && !nameRE.MatchString(md.GetName())) ||
					(nsRE != nil && !nsRE.MatchString(md.GetNamespace())) ||
					!strings.HasPrefix(p.GetId(), o.id) {
					continue
				}
				pods = append(pods, p)
			}
			sort.SliceStable(pods, func(i, j int) bool { return pods[i].GetCreatedAt() > pods[j].GetCreatedAt() })

			if o.quiet {
				for _, p := range pods {
					fmt.Fprintln(a.stdout, p.GetId())
				}
				return nil
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, &runtimeapi.ListPodSandboxResponse{Items: pods})
			}
			now := time.Now()
			t := newTable(a.stdout)
			fmt.Fprintln(t, "POD ID\tCREATED\tSTATE\tNAME\tNAMESPACE\tATTEMPT\tRUNTIME")
			for _, p := range pods {
				md := p.GetMetadata()
				handler := p.GetRuntimeHandler()
				if handler == "" {
					handler = "(default)"
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.tid(p.GetId()), ago(p.GetCreatedAt(), now),
					podState(p.GetState()), md.GetName(), md.GetNamespace(), md.GetAttempt(), handler)
			}
			return t.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "only pods whose name matches this regular expression")
	f.StringVar(&o.namespace, "namespace", "", "only pods whose namespace matches this regular expression")
	f.StringVar(&o.state, "state", "", "only pods in this state: ready or notready")
	f.StringVar(&o.id, "id", "", "only pods whose ID starts with this")
	f.StringArrayVar(&o.labels, "label", nil, "only pods with this label (key=value, repeatable)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only pod IDs")
	return cmd
}

func inspectpCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "inspectp POD...",
		Short:   "Show the status of pod sandboxes",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth inspectp nginx -o yaml",
		RunE: forEachID(a, a.resolvePods, func(ctx context.Context, id string) error {
			resp, err := a.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
			if err != nil {
				return fmt.Errorf("pod %s: %w", shortID(id), err)
			}
			return a.printStatus(resp.GetStatus(), resp.GetInfo(), func() { printPodSummary(a, resp.GetStatus()) })
		}),
	}
}

func printPodSummary(a *app, s *runtimeapi.PodSandboxStatus) {
	t := newTable(a.stdout)
	md := s.GetMetadata()
	fmt.Fprintf(t, "ID:\t%s\n", s.GetId())
	fmt.Fprintf(t, "Name:\t%s\n", md.GetName())
	fmt.Fprintf(t, "Namespace:\t%s\n", md.GetNamespace())
	fmt.Fprintf(t, "UID:\t%s\n", md.GetUid())
	fmt.Fprintf(t, "Attempt:\t%d\n", md.GetAttempt())
	fmt.Fprintf(t, "State:\t%s\n", podState(s.GetState()))
	fmt.Fprintf(t, "Created:\t%s\n", ago(s.GetCreatedAt(), time.Now()))
	fmt.Fprintf(t, "IP:\t%s\n", s.GetNetwork().GetIp())
	fmt.Fprintf(t, "Runtime:\t%s\n", s.GetRuntimeHandler())
	t.Flush()
}

func runpCmd(a *app) *cobra.Command {
	var handler string
	cmd := &cobra.Command{
		Use:   "runp POD_CONFIG",
		Short: "Run a pod sandbox from a JSON or YAML config file",
		Long: "Run a pod sandbox from a CRI PodSandboxConfig (JSON or YAML, see docs/CLI.md) with the\n" +
			"runtime handler -r; prints the pod's ID",
		Args:    cobra.ExactArgs(1),
		Example: "  berth runp pod-config.json",
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg runtimeapi.PodSandboxConfig
			if err := loadConfig(args[0], a.stdin, &cfg); err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &cfg, RuntimeHandler: handler})
			if err != nil {
				return fmt.Errorf("running pod: %w", err)
			}
			fmt.Fprintln(a.stdout, resp.GetPodSandboxId())
			return nil
		},
	}
	cmd.Flags().StringVarP(&handler, "runtime", "r", "", "runtime handler (RuntimeClass) to run the pod with")
	return cmd
}

func stoppCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "stopp POD...",
		Short:   "Stop pod sandboxes and their containers",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth stopp nginx",
		RunE: forEachID(a, a.resolvePods, func(ctx context.Context, id string) error {
			if _, err := a.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				return fmt.Errorf("stopping pod %s: %w", shortID(id), err)
			}
			fmt.Fprintf(a.stdout, "Stopped pod %s\n", id)
			return nil
		}),
	}
}

func rmpCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rmp POD...",
		Short:   "Remove pod sandboxes",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth rmp -f nginx",
		RunE: forEachID(a, a.resolvePods, func(ctx context.Context, id string) error {
			if force {
				if _, err := a.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
					return fmt.Errorf("stopping pod %s: %w", shortID(id), err)
				}
			} else {
				st, err := a.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
				if err != nil {
					return fmt.Errorf("pod %s: %w", shortID(id), err)
				}
				if st.GetStatus().GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
					return fmt.Errorf("pod %s is ready (running): stop it first with 'berth stopp', or use -f", shortID(id))
				}
			}
			if _, err := a.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				return fmt.Errorf("removing pod %s: %w", shortID(id), err)
			}
			fmt.Fprintf(a.stdout, "Removed pod %s\n", id)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop the pod first if it is running")
	return cmd
}
