package cri

import (
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/stats"
)

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// criCPU and criMemory return nil when the cgroup could not be read (the
// container is not running): kubelet treats a missing value as unknown,
// where zero would read as idle.
func criCPU(u *stats.Usage) *runtimeapi.CpuUsage {
	if u.CPU == nil {
		return nil
	}
	out := &runtimeapi.CpuUsage{Timestamp: u.At.UnixNano(), UsageCoreNanoSeconds: u64(u.CPU.UsageNanos)}
	if u.CPU.NanoCores != nil {
		out.UsageNanoCores = u64(*u.CPU.NanoCores)
	}
	return out
}

func criMemory(u *stats.Usage) *runtimeapi.MemoryUsage {
	m := u.Memory
	if m == nil {
		return nil
	}
	out := &runtimeapi.MemoryUsage{
		Timestamp:       u.At.UnixNano(),
		WorkingSetBytes: u64(m.WorkingSet),
		UsageBytes:      u64(m.Usage),
		RssBytes:        u64(m.RSS),
		PageFaults:      u64(m.PageFaults),
		MajorPageFaults: u64(m.MajorPageFaults),
	}
	if m.Available != nil {
		out.AvailableBytes = u64(*m.Available)
	}
	return out
}

func criContainerStats(cs *stats.ContainerStats) *runtimeapi.ContainerStats {
	c := cs.Container
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id:          c.ID,
			Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
			Labels:      c.Labels,
			Annotations: c.Annotations,
		},
		Cpu:    criCPU(&cs.Usage),
		Memory: criMemory(&cs.Usage),
	}
	if d := cs.WritableLayer; d != nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp: d.At.UnixNano(),
			// Kubelet looks up capacity by this path: the dir holding
			// every container's writable layer.
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: filepath.Dir(filepath.Dir(cs.LayerDir))},
			UsedBytes:  u64(d.Bytes),
			InodesUsed: u64(d.Inodes),
		}
	}
	return out
}

func criPodStats(ps *stats.PodStats) *runtimeapi.PodSandboxStats {
	p := ps.Pod
	lin := &runtimeapi.LinuxPodSandboxStats{
		Cpu:    criCPU(&ps.Usage),
		Memory: criMemory(&ps.Usage),
	}
	if ps.Processes != nil {
		lin.Process = &runtimeapi.ProcessUsage{Timestamp: ps.At.UnixNano(), ProcessCount: u64(*ps.Processes)}
	}
	if n := ps.Network; n != nil {
		net := &runtimeapi.NetworkUsage{Timestamp: n.At.UnixNano()}
		def := n.Default()
		for i := range n.Interfaces {
			ifc := &n.Interfaces[i]
			u := &runtimeapi.NetworkInterfaceUsage{
				Name: ifc.Name, RxBytes: u64(ifc.RxBytes), RxErrors: u64(ifc.RxErrors),
				TxBytes: u64(ifc.TxBytes), TxErrors: u64(ifc.TxErrors),
			}
			if ifc == def {
				net.DefaultInterface = u
			} else {
				net.Interfaces = append(net.Interfaces, u)
			}
		}
		lin.Network = net
	}
	for _, cs := range ps.Containers {
		lin.Containers = append(lin.Containers, criContainerStats(cs))
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: p.ID, Metadata: podMetadata(p), Labels: p.Labels, Annotations: p.Annotations},
		Linux:      lin,
	}
}
