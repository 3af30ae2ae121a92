package nri

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FromCRIResources converts CRI container resources to NRI's form. Zero
// CRI values stay unset so plugins can tell "not given" from "zero".
func FromCRIResources(c *runtimeapi.LinuxContainerResources) *api.LinuxResources {
	if c == nil {
		return nil
	}
	r := &api.LinuxResources{
		Cpu:    &api.LinuxCPU{Cpus: c.CpusetCpus, Mems: c.CpusetMems},
		Memory: &api.LinuxMemory{},
	}
	if c.CpuShares != 0 {
		r.Cpu.Shares = api.UInt64(uint64(c.CpuShares))
	}
	if c.CpuQuota != 0 {
		r.Cpu.Quota = api.Int64(c.CpuQuota)
	}
	if c.CpuPeriod != 0 {
		r.Cpu.Period = api.UInt64(uint64(c.CpuPeriod))
	}
	if c.MemoryLimitInBytes != 0 {
		r.Memory.Limit = api.Int64(c.MemoryLimitInBytes)
	}
	if c.MemorySwapLimitInBytes != 0 {
		r.Memory.Swap = api.Int64(c.MemorySwapLimitInBytes)
	}
	for _, l := range c.HugepageLimits {
		r.HugepageLimits = append(r.HugepageLimits, &api.HugepageLimit{PageSize: l.PageSize, Limit: l.Limit})
	}
	if len(c.Unified) != 0 {
		r.Unified = maps.Clone(c.Unified)
	}
	return r
}

// ToCRIResources converts NRI resources back to CRI's form, which is what
// berth's update path applies. A field CRI cannot carry (block I/O or RDT
// class, pids limit, device rules, kernel memory, swappiness, ...) is an
// error naming it rather than a setting quietly dropped.
func ToCRIResources(r *api.LinuxResources) (*runtimeapi.LinuxContainerResources, error) {
	if r == nil {
		return nil, nil
	}
	var unsupported []string
	o := &runtimeapi.LinuxContainerResources{}
	if m := r.Memory; m != nil {
		o.MemoryLimitInBytes = m.GetLimit().GetValue()
		o.MemorySwapLimitInBytes = m.GetSwap().GetValue()
		for name, set := range map[string]bool{
			"memory.reservation":        m.Reservation != nil,
			"memory.kernel":             m.Kernel != nil,
			"memory.kernel_tcp":         m.KernelTcp != nil,
			"memory.swappiness":         m.Swappiness != nil,
			"memory.disable_oom_killer": m.DisableOomKiller != nil,
			"memory.use_hierarchy":      m.UseHierarchy != nil,
		} {
			if set {
				unsupported = append(unsupported, name)
			}
		}
	}
	if c := r.Cpu; c != nil {
		o.CpuShares = int64(c.GetShares().GetValue())
		o.CpuQuota = c.GetQuota().GetValue()
		o.CpuPeriod = int64(c.GetPeriod().GetValue())
		o.CpusetCpus = c.Cpus
		o.CpusetMems = c.Mems
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			unsupported = append(unsupported, "cpu.realtime")
		}
	}
	for _, l := range r.HugepageLimits {
		o.HugepageLimits = append(o.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: l.PageSize, Limit: l.Limit})
	}
	if len(r.Unified) != 0 {
		o.Unified = maps.Clone(r.Unified)
	}
	if r.BlockioClass.GetValue() != "" {
		unsupported = append(unsupported, "blockio_class")
	}
	if r.RdtClass.GetValue() != "" {
		unsupported = append(unsupported, "rdt_class")
	}
	if r.Pids != nil {
		unsupported = append(unsupported, "pids")
	}
	if len(r.Devices) != 0 {
		unsupported = append(unsupported, "devices")
	}
	if len(unsupported) != 0 {
		slices.Sort(unsupported)
		return nil, fmt.Errorf("resource update sets %s, which berth applies only at container creation", strings.Join(unsupported, ", "))
	}
	return o, nil
}
