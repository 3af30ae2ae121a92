package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/apparmor"
	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/spec"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// hostConfig gathers, once at start, the host facts every container spec
// depends on: the shared ones, then one copy per runtime handler with what
// differs between handlers (recursive read-only mounts, host devices for
// privileged containers).
func hostConfig(cfg *config.Config, log *slog.Logger) (spec.HostConfig, map[string]spec.HostConfig, error) {
	caps, err := spec.BoundingCapabilities()
	if err != nil {
		return spec.HostConfig{}, nil, fmt.Errorf("read berthd's capability bounding set: %w", err)
	}
	v2 := cgroupV2(cgroupRoot)
	h := spec.HostConfig{
		AllCapabilities: caps,
		AppArmorEnabled: apparmor.Enabled(),
		SELinuxEnabled:  spec.SELinuxEnabled(),
		SwapLimit:       swapLimit(cgroupRoot, v2),
		Hugetlb:         hugetlb(cgroupRoot, v2),
		// On a v2-only host a container sees its own cgroup as the root,
		// as with containerd; v1 and hybrid hosts keep the host view.
		CgroupNamespace: v2,
	}
	h.NodeHostname, _ = os.Hostname()
	if h.AppArmorEnabled {
		// RuntimeDefault (and an unset profile) name this profile; if it
		// cannot be loaded, such containers are refused, never run
		// unconfined.
		if err := apparmor.LoadDefault(context.Background()); err != nil {
			log.Error("AppArmor is enabled but berth's default profile did not load; containers asking for RuntimeDefault (or no profile) will be refused",
				"profile", apparmor.DefaultProfile, "err", err)
		} else {
			h.AppArmorDefaultProfile = apparmor.DefaultProfile
		}
	}
	if cfg.OOMScoreAdjRestricted() {
		v, err := spec.DaemonOOMScoreAdj()
		if err != nil {
			return h, nil, err
		}
		h.OOMScoreAdjMin = &v
		log.Info("no CAP_SYS_RESOURCE: clamping container oom_score_adj to berthd's own", "min", v)
	}
	log.Info("host facts", "cgroupV2", v2, "swapLimit", h.SwapLimit, "hugetlb", h.Hugetlb,
		"appArmor", h.AppArmorEnabled, "appArmorProfile", h.AppArmorDefaultProfile, "selinux", h.SELinuxEnabled, "capabilities", len(caps))
	warnBroadAnnotationPatterns(cfg, log)
	perHandler := make(map[string]spec.HostConfig, len(cfg.Runtimes))
	for name, rt := range cfg.Runtimes {
		hh := h
		hh.RecursiveReadOnlyMounts = rt.Features.RecursiveReadOnlyMounts
		hh.PrivilegedWithoutHostDevices = rt.PrivilegedWithoutHostDevices
		hh.PodAnnotations = rt.PodAnnotations
		hh.ContainerAnnotations = rt.ContainerAnnotations
		perHandler[name] = hh
	}
	return h, perHandler, nil
}

// detectFeatures turns on the features a handler's binary says it has
// (`<runtime> features`, runc >= 1.1) and the kernel supports, so that
// Status.runtime_handlers tells the kubelet the truth without the operator
// having to. It only ever adds: a feature set in the config stays set.
func detectFeatures(ctx context.Context, cfg *config.Config, paths map[string]string, log *slog.Logger) {
	rro := kernelHasMountSetattr()
	for name, rt := range cfg.Runtimes {
		path, ok := paths[name]
		if !ok {
			continue
		}
		opts, err := runtimeMountOptions(ctx, path)
		if err != nil {
			log.Debug("runtime reports no features; keeping the configured ones", "handler", name, "err", err)
			continue
		}
		if rro && slices.Contains(opts, "rro") && !rt.Features.RecursiveReadOnlyMounts {
			rt.Features.RecursiveReadOnlyMounts = true
			log.Info("runtime handler supports recursive read-only mounts", "handler", name)
		}
		cfg.Runtimes[name] = rt
	}
}

// runtimeMountOptions asks an OCI runtime for the mount options it knows
// (the runtime-spec "features" document).
func runtimeMountOptions(ctx context.Context, path string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "features").Output()
	if err != nil {
		return nil, err
	}
	var f struct {
		MountOptions []string `json:"mountOptions"`
	}
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("decode %s features: %w", path, err)
	}
	return f.MountOptions, nil
}

// kernelHasMountSetattr reports whether the kernel has mount_setattr(2)
// (Linux >= 5.12), which recursive read-only mounts need. A bad fd gets
// EBADF from a kernel that has it and ENOSYS from one that does not.
func kernelHasMountSetattr() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}

// cgroupV2 reports whether root is a cgroup v2 (unified-only) mount.
func cgroupV2(root string) bool {
	var st unix.Statfs_t
	return unix.Statfs(root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// swapLimit reports whether the memory controller can limit swap: v1 has
// memory.memsw.* (swap accounting on), v2 has memory.swap.max in child
// cgroups (never in the root).
func swapLimit(root string, v2 bool) bool {
	if !v2 {
		return exists(filepath.Join(root, "memory", "memory.memsw.limit_in_bytes"))
	}
	m, _ := filepath.Glob(filepath.Join(root, "*", "memory.swap.max"))
	return len(m) > 0
}

// hugetlb reports whether the hugetlb controller is available.
func hugetlb(root string, v2 bool) bool {
	if !v2 {
		return exists(filepath.Join(root, "hugetlb"))
	}
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	return err == nil && slices.Contains(strings.Fields(string(b)), "hugetlb")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// isRunsc says whether a handler's binary is gVisor's runsc, which runs a
// pod as one sandbox: the pod's first container (berth's pause process)
// creates it, the others join it (through the io.kubernetes.cri.*
// annotations every spec carries).
func isRunsc(path string) bool { return filepath.Base(path) == "runsc" }

// releaseRunscPins unmounts the "null" network namespace runsc pins under
// its root for its gofers, so nothing of berth stays mounted after berthd
// stops (runsc pins a new one on its next start). Running sandboxes keep
// theirs: a namespace lives while a process is in it.
func releaseRunscPins(runtimes map[string]*oci.Runtime, handlers []string) {
	for _, name := range handlers {
		p := filepath.Join(runtimes[name].Root, "null-netns")
		// Concurrent runsc starts may stack pins; unmount until none is left.
		for i := 0; i < 16 && unix.Unmount(p, unix.MNT_DETACH) == nil; i++ {
		}
	}
}

// runscDefaultArgs adds the runsc flags berth needs unless the handler's
// args already set them: --gofer-network-namespace=new keeps runsc from
// pinning a shared "null" network namespace as a mount under its root (a
// mount berth would leave behind), at the cost of one empty namespace per
// gofer. Older runsc builds without the flag are left alone.
func runscDefaultArgs(ctx context.Context, path string, args []string) []string {
	const flag = "--gofer-network-namespace"
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") || a == "-gofer-network-namespace" || strings.HasPrefix(a, "-gofer-network-namespace=") {
			return args
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "flags").CombinedOutput()
	if !strings.Contains(string(out), "gofer-network-namespace") {
		return args
	}
	return append(args, flag+"=new")
}

// warnBroadAnnotationPatterns warns, at start, of annotation allow-list
// patterns that let any CRI client steer the runtime ("*", or a pattern
// with no literal prefix): valid, but rarely what an operator means.
func warnBroadAnnotationPatterns(cfg *config.Config, log *slog.Logger) {
	for _, name := range slices.Sorted(maps.Keys(cfg.Runtimes)) {
		rt := cfg.Runtimes[name]
		for _, l := range []struct {
			key      string
			patterns []string
		}{{"pod_annotations", rt.PodAnnotations}, {"container_annotations", rt.ContainerAnnotations}} {
			for i, p := range l.patterns {
				if why := spec.BroadAnnotationPattern(p); why != "" {
					log.Warn("annotation allow-list pattern lets any CRI client set runtime annotations; list the prefixes you need instead",
						"key", fmt.Sprintf("runtimes.%s.%s[%d]", name, l.key, i), "pattern", p, "why", why)
				}
			}
		}
	}
}
