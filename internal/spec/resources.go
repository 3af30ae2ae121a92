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

// WithResources maps CRI resources, checked by checkResources, to the
// cgroup settings runc applies. Like containerd, a memory limit without a swap limit also caps swap at the
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
			v := uint64(p)
			res.CPU.Period = &v
		}
		if q := r.GetCpuQuota(); q != 0 {
			res.CPU.Quota = &q
		}
		if sh := r.GetCpuShares(); sh != 0 {
			v := uint64(sh)
			res.CPU.Shares = &v
		}
		res.CPU.Cpus = r.GetCpusetCpus()
		res.CPU.Mems = r.GetCpusetMems()
		limit, swap := r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes()
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

// WithOOMScoreAdj sets oom_score_adj from the checked CRI resources, raised to min
// when given: a process without CAP_SYS_RESOURCE cannot set a score below
// its own, and runc would fail the create.
func WithOOMScoreAdj(r *runtimeapi.LinuxContainerResources, min *int) Opt {
	return func(s *specs.Spec) error {
		if r == nil {
			return nil
		}
		adj := int(r.GetOomScoreAdj())
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

// Device is a host device node to create in the container, with the
// device cgroup access it gets.
type Device struct {
	Node   specs.LinuxDevice // Path is the path in the container
	Access string            // a combination of r, w and m
}

// resolveDevices checks the CRI config's devices and finds them on the
// host. A directory host path adds every device under it.
func resolveDevices(devices []*runtimeapi.Device, lookup DeviceLookup) ([]Device, error) {
	var out []Device
	for i, d := range devices {
		field := fmt.Sprintf("devices[%d]", i)
		perms := d.GetPermissions()
		if perms == "" || strings.Trim(perms, "rwm") != "" {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.permissions %q must be a combination of r, w and m", field, perms))
		}
		if !isAbs(d.GetContainerPath()) {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.container_path %q must be an absolute path", field, d.GetContainerPath()))
		}
		if !isAbs(d.GetHostPath()) {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.host_path %q must be an absolute path", field, d.GetHostPath()))
		}
		found, err := lookup(d.GetHostPath())
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errdefs.Invalid(fmt.Sprintf("%s.host_path %s does not exist", field, d.GetHostPath()))
			}
			return nil, fmt.Errorf("%s.host_path %s: %w", field, d.GetHostPath(), err)
		}
		if len(found) == 0 {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.host_path %s is not a device", field, d.GetHostPath()))
		}
		hostRoot := path.Clean(d.GetHostPath())
		for _, dev := range found {
			rel := strings.TrimPrefix(path.Clean(dev.Path), hostRoot)
			dev.Path = path.Join(d.GetContainerPath(), rel)
			out = append(out, Device{Node: dev, Access: perms})
		}
	}
	return out, nil
}

// WithDevices creates the devices in the container and lets the device
// cgroup allow them.
func WithDevices(devices []Device) Opt {
	return func(s *specs.Spec) error {
		ensureResources(s)
		for _, d := range devices {
			major, minor := d.Node.Major, d.Node.Minor
			s.Linux.Devices = append(s.Linux.Devices, d.Node)
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: d.Node.Type, Major: &major, Minor: &minor, Access: d.Access,
			})
		}
		return nil
	}
}

// checkResources checks CRI resources: ranges the kernel accepts, and
// names that stay cgroup files.
func checkResources(r *runtimeapi.LinuxContainerResources) error {
	if r == nil {
		return nil
	}
	const field = "linux.resources"
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"cpu_period", r.GetCpuPeriod()},
		{"cpu_shares", r.GetCpuShares()},
		{"memory_limit_in_bytes", r.GetMemoryLimitInBytes()},
		{"memory_swap_limit_in_bytes", r.GetMemorySwapLimitInBytes()},
	} {
		if f.v < 0 {
			return errdefs.Invalid(fmt.Sprintf("%s.%s %d must not be negative", field, f.name, f.v))
		}
	}
	if q := r.GetCpuQuota(); q < -1 {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_quota %d must be -1 (no limit) or more", field, q))
	}
	// The kernel's CFS bounds: runc would fail later with a vaguer message.
	if p := r.GetCpuPeriod(); p != 0 && (p < 1000 || p > 1000000) {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_period %d must be between 1000 and 1000000 microseconds", field, p))
	}
	if q := r.GetCpuQuota(); q > 0 && q < 1000 {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_quota %d must be at least 1000 microseconds", field, q))
	}
	if sh := r.GetCpuShares(); sh > 262144 {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_shares %d is above the kernel's 262144", field, sh))
	}
	if adj := r.GetOomScoreAdj(); adj < -1000 || adj > 1000 {
		return errdefs.Invalid(fmt.Sprintf("%s.oom_score_adj %d is outside [-1000, 1000]", field, adj))
	}
	for i, h := range r.GetHugepageLimits() {
		if h.GetPageSize() == "" {
			return errdefs.Invalid(fmt.Sprintf("%s.hugepage_limits[%d].page_size is required", field, i))
		}
	}
	for k := range r.GetUnified() {
		if k == "" || strings.ContainsAny(k, "/\x00") || strings.Contains(k, "..") {
			return errdefs.Invalid(fmt.Sprintf("%s.unified: %q is not a cgroup file name", field, k))
		}
	}
	return nil
}

// Resources checks the CRI resources of an UpdateContainerResources and
// maps them to the cgroup settings the runtime applies.
func Resources(r *runtimeapi.LinuxContainerResources, o ResourceOptions) (*specs.LinuxResources, error) {
	if err := checkResources(r); err != nil {
		return nil, err
	}
	s := &specs.Spec{}
	if err := WithResources(r, o)(s); err != nil {
		return nil, err
	}
	return s.Linux.Resources, nil
}
