package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// ResourceOptions are the host facts WithResources needs.
type ResourceOptions struct {
	SwapLimit bool  // the memory controller can limit swap
	Hugetlb   bool  // the hugetlb controller exists
	PidsLimit int64 // > 0: daemon-wide pids limit
}

// WithResources maps CRI resources to the cgroup settings runc applies.
// Like containerd, a memory limit without a swap limit also caps swap at the
// same value (no swapping), when the host can limit swap.
func WithResources(r *runtimeapi.LinuxContainerResources, o ResourceOptions) Opt {
	return func(s *specs.Spec) error {
		ensureResources(s)
		res := s.Linux.Resources
		if o.PidsLimit > 0 {
			limit := o.PidsLimit
			res.Pids = &specs.LinuxPids{Limit: &limit}
		}
		if r == nil {
			return nil
		}
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		if res.Memory == nil {
			res.Memory = &specs.LinuxMemory{}
		}
		if p := r.GetCpuPeriod(); p != 0 {
			if p < 0 {
				return errdefs.Invalid(fmt.Sprintf("linux.resources.cpu_period %d must not be negative", p))
			}
			v := uint64(p)
			res.CPU.Period = &v
		}
		if q := r.GetCpuQuota(); q != 0 {
			res.CPU.Quota = &q
		}
		if sh := r.GetCpuShares(); sh != 0 {
			if sh < 0 {
				return errdefs.Invalid(fmt.Sprintf("linux.resources.cpu_shares %d must not be negative", sh))
			}
			v := uint64(sh)
			res.CPU.Shares = &v
		}
		res.CPU.Cpus = r.GetCpusetCpus()
		res.CPU.Mems = r.GetCpusetMems()
		limit, swap := r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes()
		if limit < 0 {
			return errdefs.Invalid(fmt.Sprintf("linux.resources.memory_limit_in_bytes %d must not be negative", limit))
		}
		if limit != 0 {
			res.Memory.Limit = &limit
			if swap == 0 && o.SwapLimit {
				res.Memory.Swap = &limit
			}
		}
		if swap != 0 && o.SwapLimit {
			res.Memory.Swap = &swap
		}
		if o.Hugetlb {
			for _, h := range r.GetHugepageLimits() {
				res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
			}
		}
		if u := r.GetUnified(); len(u) > 0 {
			if res.Unified == nil {
				res.Unified = make(map[string]string, len(u))
			}
			maps.Copy(res.Unified, u)
		}
		return nil
	}
}

// WithOOMScoreAdj sets oom_score_adj from the CRI resources, raised to min
// when given: a process without CAP_SYS_RESOURCE cannot set a score below
// its own, and runc would fail the create.
func WithOOMScoreAdj(r *runtimeapi.LinuxContainerResources, min *int) Opt {
	return func(s *specs.Spec) error {
		if r == nil {
			return nil
		}
		adj := int(r.GetOomScoreAdj())
		if adj < -1000 || adj > 1000 {
			return errdefs.Invalid(fmt.Sprintf("linux.resources.oom_score_adj %d is outside [-1000, 1000]", adj))
		}
		if min != nil && adj < *min {
			adj = *min
		}
		ensureProcess(s)
		s.Process.OOMScoreAdj = &adj
		return nil
	}
}

// denyAllDevices is the first device cgroup rule: nothing is allowed
// unless a later rule says so.
func denyAllDevices() []specs.LinuxDeviceCgroup {
	return []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
}

// WithDefaultDeviceRules allows the devices every container gets (/dev/null,
// zero, full, random, urandom, tty, console, ptmx and the pty slaves), after
// the deny-all rule. runc would add these anyway; listing them keeps the
// spec self-describing for other runtimes.
func WithDefaultDeviceRules() Opt {
	return func(s *specs.Spec) error {
		ensureResources(s)
		c := func(major, minor int64) specs.LinuxDeviceCgroup {
			r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
			if minor >= 0 {
				r.Minor = &minor
			}
			return r
		}
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
			c(1, 3),    // /dev/null
			c(1, 8),    // /dev/random
			c(1, 7),    // /dev/full
			c(5, 0),    // /dev/tty
			c(1, 5),    // /dev/zero
			c(1, 9),    // /dev/urandom
			c(5, 1),    // /dev/console
			c(136, -1), // /dev/pts/*
			c(5, 2),    // /dev/ptmx
		)
		return nil
	}
}

// DeviceLookup returns the device node at a host path, or all device nodes
// under a directory (HostFS.Devices).
type DeviceLookup func(hostPath string) ([]specs.LinuxDevice, error)

// WithCRIDevices adds the CRI config's devices: the node is created in the
// container at container_path and the device cgroup allows the given
// permissions. A directory host path adds every device under it.
func WithCRIDevices(devices []*runtimeapi.Device, lookup DeviceLookup) Opt {
	return func(s *specs.Spec) error {
		ensureResources(s)
		for i, d := range devices {
			field := fmt.Sprintf("devices[%d]", i)
			perms := d.GetPermissions()
			if perms == "" || strings.Trim(perms, "rwm") != "" {
				return errdefs.Invalid(fmt.Sprintf("%s.permissions %q must be a combination of r, w and m", field, perms))
			}
			if !isAbs(d.GetContainerPath()) {
				return errdefs.Invalid(fmt.Sprintf("%s.container_path %q must be an absolute path", field, d.GetContainerPath()))
			}
			if !isAbs(d.GetHostPath()) {
				return errdefs.Invalid(fmt.Sprintf("%s.host_path %q must be an absolute path", field, d.GetHostPath()))
			}
			found, err := lookup(d.GetHostPath())
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return errdefs.Invalid(fmt.Sprintf("%s.host_path %s does not exist", field, d.GetHostPath()))
				}
				return fmt.Errorf("%s.host_path %s: %w", field, d.GetHostPath(), err)
			}
			if len(found) == 0 {
				return errdefs.Invalid(fmt.Sprintf("%s.host_path %s is not a device", field, d.GetHostPath()))
			}
			hostRoot := path.Clean(d.GetHostPath())
			for _, dev := range found {
				rel := strings.TrimPrefix(path.Clean(dev.Path), hostRoot)
				dev.Path = path.Join(d.GetContainerPath(), rel)
				major, minor := dev.Major, dev.Minor
				s.Linux.Devices = append(s.Linux.Devices, dev)
				s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
					Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms,
				})
			}
		}
		return nil
	}
}
