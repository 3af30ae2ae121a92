package config

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	has, err := capEffHas(f, unix.CAP_SYS_RESOURCE)
	if err != nil {
		slog.Warn("cannot read effective capabilities", "error", err)
		return false
	}
	return has
}

// capEffHas scans /proc/<pid>/status text for the CapEff line and tests bit.
func capEffHas(status io.Reader, bit int) (bool, error) {
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(v), err)
		}
		return mask&(1<<uint(bit)) != 0, nil
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, fmt.Errorf("no CapEff line in process status")
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
