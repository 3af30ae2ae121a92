package config

import (
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/host"
)

// systemdRunDir exists only while systemd is PID 1 (sd_booted(3)).
var systemdRunDir = "/run/systemd/system"

// CgroupDriver returns the cgroup driver to use: the configured one, or
// systemd when the host runs systemd, else cgroupfs.
func (c *Config) CgroupDriver() string {
	if c.CgroupDriverSetting != "" {
		return c.CgroupDriverSetting
	}
	if fi, err := os.Stat(systemdRunDir); err == nil && fi.IsDir() {
		return "systemd"
	}
	return "cgroupfs"
}

// OOMScoreAdjRestricted says whether containers' oom_score_adj must be
// clamped to berthd's own: without CAP_SYS_RESOURCE the kernel refuses to
// lower it, and runc would fail the create.
func (c *Config) OOMScoreAdjRestricted() bool {
	return c.RestrictOOMScoreAdj.Resolve(func() bool { return !HasCapSysResource() })
}

// HasCapSysResource reports whether berthd has CAP_SYS_RESOURCE in its
// effective set (CapEff in /proc/self/status). When it cannot tell it says
// no, which is the safe answer: clamping never makes a create fail.
func HasCapSysResource() bool {
	has, err := host.HasEffectiveCap(unix.CAP_SYS_RESOURCE)
	if err != nil {
		slog.Warn("cannot read effective capabilities", "error", err)
		return false
	}
	return has
}

// SlogLevel returns log_level as a slog level (Validate has checked it).
func (c *Config) SlogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// Runtime returns the handler's settings with Root resolved. An empty
// handler means default_runtime. Unknown handlers are an error naming the
// configured ones, since the kubelet passes RuntimeClass handlers verbatim.
func (c *Config) Runtime(handler string) (Runtime, error) {
	if handler == "" {
		handler = c.DefaultRuntime
	}
	rt, ok := c.Runtimes[handler]
	if !ok {
		return Runtime{}, notFoundHandler(handler, c.runtimeNames())
	}
	if rt.Root == "" {
		rt.Root = filepath.Join(c.StateDir, "runtimes", handler)
	}
	return rt, nil
}

// UsernsDir is where pods in user namespaces keep their rootfs mount
// points: beside the state dir, not in it, because the pod's remapped root
// must reach them and the state dir stays root-only (see internal/usernsdir).
func (c *Config) UsernsDir() string {
	return filepath.Clean(c.StateDir) + "-userns"
}
