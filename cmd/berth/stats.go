package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cpuPercent computes CPU use in percent of one core. Runtimes that report
// usage_nano_cores give it directly; otherwise it is the growth of the
// cumulative counter between two samples.
func cpuPercent(prev, cur *runtimeapi.CpuUsage) float64 {
	if n := cur.GetUsageNanoCores(); n != nil {
		return float64(n.GetValue()) / 1e7
	}
	if prev == nil || cur == nil {
		return 0
	}
	dt := cur.GetTimestamp() - prev.GetTimestamp()
	du := int64(cur.GetUsageCoreNanoSeconds().GetValue()) - int64(prev.GetUsageCoreNanoSeconds().GetValue())
	if dt <= 0 || du < 0 {
		return 0
	}
	return float64(du) / float64(dt) * 100
}

// secondSample returns first as it is when the runtime gave usage_nano_cores
// for every object (or seconds is 0). Otherwise it waits seconds and lists
// again, returning the second listing and each object's first CPU sample by
// id, for cpuPercent.
func secondSample[T any](ctx context.Context, seconds int, first []T, list func() ([]T, error), cpu func(T) (string, *runtimeapi.CpuUsage)) ([]T, map[string]*runtimeapi.CpuUsage, error) {
	prev := map[string]*runtimeapi.CpuUsage{}
	needSecond := false
	for _, s := range first {
		id, c := cpu(s)
		prev[id] = c
		if c.GetUsageNanoCores() == nil {
			needSecond = true
		}
	}
	if !needSecond || seconds <= 0 {
		return first, map[string]*runtimeapi.CpuUsage{}, nil
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(time.Duration(seconds) * time.Second):
	}
	next, err := list()
	return next, prev, err
}

func statsCmd(a *app) *cobra.Command {
	var o struct {
		pod     string
		labels  []string
		seconds int
	}
	cmd := &cobra.Command{
		Use:     "stats [CONTAINER]",
		Short:   "Show containers' resource usage",
		Long:    "Show containers' CPU % (sampled over -s seconds), memory working set, and the disk and inodes\nof their writable layers",
		Args:    cobra.MaximumNArgs(1),
		Example: "  berth stats --pod nginx",
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(o.labels)
			if err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			filter := &runtimeapi.ContainerStatsFilter{LabelSelector: labels}
			if len(args) == 1 {
				ids, err := a.resolveContainers(ctx, args)
				if err != nil {
					return err
				}
				filter.Id = ids[0]
			}
			if o.pod != "" {
				ids, err := a.resolvePods(ctx, []string{o.pod})
				if err != nil {
					return err
				}
				filter.PodSandboxId = ids[0]
			}
			list := func() ([]*runtimeapi.ContainerStats, error) {
				resp, err := a.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
				if err != nil {
					return nil, fmt.Errorf("listing stats: %w", err)
				}
				return resp.GetStats(), nil
			}
			stats, err := list()
			if err != nil {
				return err
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, &runtimeapi.ListContainerStatsResponse{Stats: stats})
			}
			stats, prev, err := secondSample(ctx, o.seconds, stats, list,
				func(s *runtimeapi.ContainerStats) (string, *runtimeapi.CpuUsage) {
					return s.GetAttributes().GetId(), s.GetCpu()
				})
			if err != nil {
				return err
			}
			sort.SliceStable(stats, func(i, j int) bool {
				return stats[i].GetAttributes().GetMetadata().GetName() < stats[j].GetAttributes().GetMetadata().GetName()
			})
			t := newTable(a.stdout)
			fmt.Fprintln(t, "CONTAINER\tNAME\tCPU %\tMEM\tDISK\tINODES")
			for _, s := range stats {
				id := s.GetAttributes().GetId()
				fmt.Fprintf(t, "%s\t%s\t%.2f\t%s\t%s\t%d\n", a.tid(id), s.GetAttributes().GetMetadata().GetName(),
					cpuPercent(prev[id], s.GetCpu()),
					humanSize(s.GetMemory().GetWorkingSetBytes().GetValue()),
					humanSize(s.GetWritableLayer().GetUsedBytes().GetValue()),
					s.GetWritableLayer().GetInodesUsed().GetValue())
			}
			return t.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.pod, "pod", "", "only containers of this pod (ID prefix or name)")
	f.StringArrayVar(&o.labels, "label", nil, "only containers with this label (key=value, repeatable)")
	f.IntVarP(&o.seconds, "seconds", "s", 1, "sample CPU over this many seconds when the runtime gives only cumulative usage")
	return cmd
}

func statspCmd(a *app) *cobra.Command {
	var o struct {
		labels  []string
		seconds int
	}
	cmd := &cobra.Command{
		Use:     "statsp [POD]",
		Short:   "Show pods' resource usage",
		Long:    "Show pods' CPU % (sampled over -s seconds), memory working set, and process and container counts",
		Args:    cobra.MaximumNArgs(1),
		Example: "  berth statsp nginx",
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(o.labels)
			if err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			filter := &runtimeapi.PodSandboxStatsFilter{LabelSelector: labels}
			if len(args) == 1 {
				ids, err := a.resolvePods(ctx, args)
				if err != nil {
					return err
				}
				filter.Id = ids[0]
			}
			list := func() ([]*runtimeapi.PodSandboxStats, error) {
				resp, err := a.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: filter})
				if err != nil {
					return nil, fmt.Errorf("listing pod stats: %w", err)
				}
				return resp.GetStats(), nil
			}
			stats, err := list()
			if err != nil {
				return err
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, &runtimeapi.ListPodSandboxStatsResponse{Stats: stats})
			}
			stats, prev, err := secondSample(ctx, o.seconds, stats, list,
				func(s *runtimeapi.PodSandboxStats) (string, *runtimeapi.CpuUsage) {
					return s.GetAttributes().GetId(), s.GetLinux().GetCpu()
				})
			if err != nil {
				return err
			}
			sort.SliceStable(stats, func(i, j int) bool {
				mi, mj := stats[i].GetAttributes().GetMetadata(), stats[j].GetAttributes().GetMetadata()
				return mi.GetNamespace()+"/"+mi.GetName() < mj.GetNamespace()+"/"+mj.GetName()
			})
			t := newTable(a.stdout)
			fmt.Fprintln(t, "POD ID\tPOD\tNAMESPACE\tCPU %\tMEM\tPROCS\tCONTAINERS")
			for _, s := range stats {
				id := s.GetAttributes().GetId()
				l := s.GetLinux()
				fmt.Fprintf(t, "%s\t%s\t%s\t%.2f\t%s\t%d\t%d\n", a.tid(id), s.GetAttributes().GetMetadata().GetName(),
					s.GetAttributes().GetMetadata().GetNamespace(),
					cpuPercent(prev[id], l.GetCpu()),
					humanSize(l.GetMemory().GetWorkingSetBytes().GetValue()),
					l.GetProcess().GetProcessCount().GetValue(),
					len(l.GetContainers()))
			}
			return t.Flush()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.labels, "label", nil, "only pods with this label (key=value, repeatable)")
	f.IntVarP(&o.seconds, "seconds", "s", 1, "sample CPU over this many seconds when the runtime gives only cumulative usage")
	return cmd
}
