package conmon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/host"
)

// ReapOrphan removes what a create cut short by a crash of the daemon left
// of container id on the host: its conmon, the runtime's state and the
// cgroup. dir is the container's conmon dir, bundleDir holds config.json.
//
// The order matters. The crashed daemon's conmon outlives it and may still
// be running the runtime's create: deleting the runtime state first would
// race with that create and leave a container (and, once conmon saw it
// killed, an exit file) behind. So every process working on the bundle
// (conmon, the runtime under it) is killed and awaited first; then the
// runtime state goes under each of runtimes (the handler is not known);
// then the cgroup, read from the bundle's config.json because a create
// killed half-way may have made it without any runtime state.
func ReapOrphan(ctx context.Context, id, dir, bundleDir string, runtimes []Runtime) {
	var pids []int
	if pid, alive := ConmonAlive(dir); alive {
		pids = append(pids, pid)
	}
	pids = append(pids, processesNaming(bundleDir)...)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		if !host.WaitGone(pid, 2*time.Second) {
			slog.Warn("process of a half-created container did not exit after SIGKILL", "container", id, "pid", pid)
		}
	}
	for _, rt := range runtimes {
		if err := rt.Delete(ctx, id, true); err != nil {
			slog.Warn("deleting half-created container from the runtime", "container", id, "runtime", rt.Name(), "err", err)
		}
	}
	killCgroupProcs(bundleCgroupsPath(bundleDir))
	removeOrphanCgroup(id, bundleDir)
}

// processesNaming returns the processes whose command line has an argument
// that is path or below it (conmon -b <bundle>, runc create --bundle ...).
func processesNaming(path string) []int {
	return host.Find(func(p host.Proc) bool {
		args, _ := p.Cmdline()
		return slices.ContainsFunc(args, func(a string) bool { return a == path || strings.HasPrefix(a, path+"/") })
	})
}

// killCgroupProcs SIGKILLs what is left in a half-created container's own
// cgroup (a runtime init whose create was killed), so the cgroup can go.
func killCgroupProcs(path string) {
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) == "/" {
		return
	}
	for _, dir := range cgroups.Dirs(path) {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
