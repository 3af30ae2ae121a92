package kubelet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// What kubelet does to the host outside the directories it is given, and
// how the tests undo it (docs/kubelet.md).

// kernelTunables are the sysctls kubelet sets at start (unless
// protectKernelDefaults, which makes it refuse to start when they differ):
// saved before and restored after every kubelet, so that the host keeps its
// own values.
var kernelTunables = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
	"kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// containerLogLinks is kubelet's fixed legacy log symlink directory; it is
// not derived from --root-dir or podLogsDir.
const containerLogLinks = "/var/log/containers"

// devicePlugins is where kubelet's device manager puts its socket, also
// whatever --root-dir says. kubelet empties it at start, so the tests must
// not run beside a real kubelet.
const (
	hostKubeletDir = "/var/lib/kubelet"
	devicePlugins  = hostKubeletDir + "/device-plugins"
)

// unmountSelfBind unmounts dir's own mounts (not those below it), topmost
// first.
func unmountSelfBind(dir string) error {
	for {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		mounted := false
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
				mounted = true
			}
		}
		if !mounted {
			return nil
		}
		if err := syscall.Unmount(dir, 0); err != nil {
			return err
		}
	}
}

// removeLogLinks removes kubelet's /var/log/containers symlinks to this
// test's logs, which kubelet's garbage collector would have removed with the
// containers had teardown waited for it (TestStaticPodRunsAndIsRemoved does),
// and the directory too when kubelet created it.
func (e *env) removeLogLinks(created bool) {
	for _, l := range e.logLinks() {
		_ = os.Remove(l)
	}
	if created {
		_ = syscall.Rmdir(containerLogLinks) // only when empty
	}
}

// logLinks returns kubelet's /var/log/containers symlinks to this test's logs.
func (e *env) logLinks() []string {
	links, _ := filepath.Glob(filepath.Join(containerLogLinks, "*_"+namespace+"_*.log"))
	var ours []string
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, e.d.Dir+"/") {
			ours = append(ours, l)
		}
	}
	return ours
}

func saveTunables(t *testing.T) map[string]string {
	t.Helper()
	saved := map[string]string{}
	for _, k := range kernelTunables {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			t.Fatal(err)
		}
		saved[k] = strings.TrimSpace(string(b))
	}
	return saved
}

func restoreTunables(t *testing.T, saved map[string]string) {
	for k, v := range saved {
		p := filepath.Join("/proc/sys", k)
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Errorf("restore sysctl %s=%s: %v", k, v, err)
		}
	}
}

// cgroupHierarchies are the mounted cgroup hierarchies (v1 controllers, the
// named systemd one and the hybrid unified one).
func cgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return out
}

// makeCgroupRoot creates kubelet's --cgroup-root (the daemon's cgroup
// parent) in every hierarchy: kubelet refuses a root that does not exist.
// The cpuset one gets its parent's CPUs and memory nodes, without which no
// task may join a child.
func makeCgroupRoot(root string) error {
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// removeKubeletCgroups removes what kubelet made below root (its QoS and pod
// cgroups, kubepods/…), deepest first, once it is stopped. A cgroup that
// still has processes is a leak.
func removeKubeletCgroups(root string) []string {
	var leaks []string
	for _, h := range cgroupHierarchies() {
		top := filepath.Join(h, root, "kubepods")
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, dir := range dirs {
			if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				leaks = append(leaks, fmt.Sprintf("cgroup %s not removable (%v); processes %q", dir, err, strings.Fields(string(b))))
			}
		}
	}
	return leaks
}
