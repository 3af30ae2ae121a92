package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func imageFsInfoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "imagefsinfo",
		Short:   "Show the filesystems that hold images and writable layers, and their use",
		Args:    cobra.NoArgs,
		Example: "  berth imagefsinfo",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
			if err != nil {
				return fmt.Errorf("imagefsinfo: %w", err)
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, resp)
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "KIND\tMOUNTPOINT\tUSED\tINODES")
			row := func(kind string, u *runtimeapi.FilesystemUsage) {
				fmt.Fprintf(t, "%s\t%s\t%s\t%d\n", kind, u.GetFsId().GetMountpoint(), humanSize(u.GetUsedBytes().GetValue()), u.GetInodesUsed().GetValue())
			}
			for _, u := range resp.GetImageFilesystems() {
				row("images", u)
			}
			for _, u := range resp.GetContainerFilesystems() {
				row("containers", u)
			}
			return t.Flush()
		},
	}
}

func runtimeConfigCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "runtime-config",
		Short:   "Show the runtime configuration kubelet reads (cgroup driver)",
		Args:    cobra.NoArgs,
		Example: "  berth runtime-config",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
			if err != nil {
				return fmt.Errorf("runtime-config: %w", err)
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, resp)
			}
			driver := "systemd"
			if resp.GetLinux().GetCgroupDriver() == runtimeapi.CgroupDriver_CGROUPFS {
				driver = "cgroupfs"
			}
			_, err = fmt.Fprintf(a.stdout, "Cgroup Driver: %s\n", driver)
			return err
		},
	}
}

func updateCmd(a *app) *cobra.Command {
	var o struct {
		memory           string
		cpus             float64
		shares, pidLimit int64
		cpuset           string
	}
	cmd := &cobra.Command{
		Use:   "update [flags] CONTAINER...",
		Short: "Change the resources of running containers",
		Long: "Change CPU and memory limits of containers (CRI UpdateContainerResources).\n" +
			"Only the flags given change; the others keep the values the container has.",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth update --memory 256m --cpus 0.5 web",
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("memory") && !f.Changed("cpus") && !f.Changed("cpu-shares") && !f.Changed("cpuset-cpus") {
				return errors.New("update: give at least one of --memory, --cpus, --cpu-shares, --cpuset-cpus")
			}
			var mem int64
			if f.Changed("memory") {
				var err error
				if mem, err = parseBytes(o.memory); err != nil {
					return fmt.Errorf("--memory: %w", err)
				}
			}
			if o.cpus < 0 || o.shares < 0 {
				return errors.New("update: --cpus and --cpu-shares cannot be negative")
			}
			return forEachID(a, a.resolveContainers, func(ctx context.Context, id string) error {
				st, err := a.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
				if err != nil {
					return fmt.Errorf("container %s: %w", shortID(id), err)
				}
				// CRI replaces the resources as a whole: start from what
				// the container has.
				res := proto.Clone(st.GetStatus().GetResources().GetLinux()).(*runtimeapi.LinuxContainerResources)
				if res == nil {
					res = &runtimeapi.LinuxContainerResources{}
				}
				if f.Changed("memory") {
					res.MemoryLimitInBytes = mem
				}
				if f.Changed("cpus") {
					res.CpuPeriod, res.CpuQuota = cpusToQuota(o.cpus)
				}
				if f.Changed("cpu-shares") {
					res.CpuShares = o.shares
				}
				if f.Changed("cpuset-cpus") {
					res.CpusetCpus = o.cpuset
				}
				if _, err := a.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: res}); err != nil {
					return fmt.Errorf("updating container %s: %w", shortID(id), err)
				}
				fmt.Fprintln(a.stdout, id)
				return nil
			})(cmd, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.memory, "memory", "m", "", "memory limit: bytes or with a unit (k, m, g); 0 removes it")
	f.Float64Var(&o.cpus, "cpus", 0, "CPU limit in cores (0.5 = half a core); 0 removes it")
	f.Int64Var(&o.shares, "cpu-shares", 0, "CPU shares (relative weight)")
	f.StringVar(&o.cpuset, "cpuset-cpus", "", "CPUs the container may use (0-3, 0,1)")
	return cmd
}

// cpusToQuota is --cpus as a CFS period and quota, as docker computes them.
func cpusToQuota(cpus float64) (period, quota int64) {
	if cpus == 0 {
		return 0, 0
	}
	const p = 100000
	return p, int64(cpus * p)
}

// parseBytes reads a size such as 512, 64k, 256m, 1.5g (binary units, as
// docker's --memory).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	mult := int64(1)
	num := strings.ToLower(s)
	num = strings.TrimSuffix(num, "b")
	if num != "" {
		switch num[len(num)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			num = num[:len(num)-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a size such as 512m or 1g", s)
	}
	return int64(v * float64(mult)), nil
}
