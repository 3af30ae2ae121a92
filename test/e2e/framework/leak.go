package framework

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/config"
)

// checkLeaks lists what is left of removed pods: mounts under the daemon's
// directories (beyond those berthd held right after start, while it runs),
// processes that name those directories (conmon, runc, pause), runc state and
// cgroups below CgroupParent deeper than a pod's own parent. It then removes
// the pod cgroup parents that are empty, as kubelet does.
func (d *Daemon) checkLeaks(running bool) []string {
	var leaks []string
	for _, m := range d.mounts() {
		if running && d.baseMounts[m] {
			continue
		}
		leaks = append(leaks, "mount left: "+m)
	}
	self := d.PID()
	for _, p := range d.processes() {
		if p.pid == self {
			continue
		}
		leaks = append(leaks, fmt.Sprintf("process left: pid %d: %s", p.pid, p.cmdline))
	}
	ids, err := d.runcList()
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	for _, id := range ids {
		leaks = append(leaks, "runc state left: container "+id)
	}
	leaks = append(leaks, d.cgroupLeaks()...)
	leaks = append(leaks, d.networkLeaks()...)
	// The rootfs mount points of pods in user namespaces go with them.
	if entries, err := os.ReadDir((&config.Config{StateDir: d.StateDir}).UsernsDir()); err == nil {
		for _, e := range entries {
			leaks = append(leaks, "userns rootfs dir left: "+e.Name())
		}
	}
	d.removeCgroups(false)
	return leaks
}

// Mounts returns the mount points under the daemon's directories.
func (d *Daemon) Mounts() []string { return d.mounts() }

// ContainerLeaks returns the runc containers and the processes (other than
// berthd) that name the daemon's directories: for a pod with no containers,
// each is a leak.
func (d *Daemon) ContainerLeaks() []string {
	var leaks []string
	ids, err := d.runcList()
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	for _, id := range ids {
		leaks = append(leaks, "runc state left: container "+id)
	}
	self := d.PID()
	for _, p := range d.processes() {
		if p.pid != self {
			leaks = append(leaks, fmt.Sprintf("process left: pid %d: %s", p.pid, p.cmdline))
		}
	}
	return leaks
}

// mounts returns mount points under d.Dir, deepest first.
func (d *Daemon) mounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == d.Dir || strings.HasPrefix(mp, d.Dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type proc struct {
	pid     int
	cmdline string
	podDir  string // a pause process's BERTH_POD_DIR
}

// processes returns every process whose command line names d.Dir.
func (d *Daemon) processes() []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		var podDir string
		if !namesDir(data, d.Dir) {
			// berthd's own pause processes name their pod dir in the
			// environment (BERTH_POD_DIR) only.
			env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if err != nil || !namesDir(env, d.Dir) {
				continue
			}
			for _, kv := range strings.Split(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, "BERTH_POD_DIR="); ok {
					podDir = v
				}
			}
		}
		out = append(out, proc{pid: pid, cmdline: strings.TrimSpace(string(bytes.ReplaceAll(data, []byte{0}, []byte{' '}))), podDir: podDir})
	}
	return out
}

// namesDir reports whether a NUL-separated command line has an argument that
// is dir or a path below it (or an --opt=value whose value is); a mere common
// prefix, as with another daemon's /tmp/berth-e2e-123 and -1234, is not.
func namesDir(cmdline []byte, dir string) bool {
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		for {
			i := strings.Index(arg, dir)
			if i < 0 {
				break
			}
			rest := arg[i+len(dir):]
			if rest == "" || rest[0] == '/' {
				return true
			}
			arg = rest
		}
	}
	return false
}

// Runc is the runc binary of berthd's default handler (berth's own from
// hack/install.sh when installed), for inspecting its containers: an
// older runc may not read a newer one's state.
func Runc() string { return config.DefaultRuncPath() }

// RuncRoot is runc's --root for this daemon.
func (d *Daemon) RuncRoot() string { return filepath.Join(d.StateDir, "runtimes", "runc") }

// runcList returns the container ids runc knows under the daemon's runc root.
func (d *Daemon) runcList() ([]string, error) {
	if _, err := os.Stat(d.RuncRoot()); os.IsNotExist(err) {
		return nil, nil
	}
	out, err := exec.Command(Runc(), "--root", d.RuncRoot(), "list", "-q").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("runc --root %s list: %v: %s", d.RuncRoot(), err, out)
	}
	return strings.Fields(string(out)), nil
}

// cgroupDirs returns CgroupParent's directory in every mounted hierarchy.
func (d *Daemon) cgroupDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", filepath.Base(d.CgroupParent)))
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", filepath.Base(d.CgroupParent))); err == nil && fi.IsDir() {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", filepath.Base(d.CgroupParent))) // pure cgroup v2
	}
	return dirs
}

// cgroupLeaks reports cgroups below a pod's parent (container cgroups) and
// any cgroup that still has processes.
func (d *Daemon) cgroupLeaks() []string {
	var leaks []string
	for _, top := range d.cgroupDirs() {
		_ = filepath.WalkDir(top, func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(top, p)
			if rel != "." && strings.Count(rel, "/") >= 1 {
				leaks = append(leaks, "cgroup left: "+p)
			}
			if procs := cgroupProcs(p); len(procs) > 0 {
				leaks = append(leaks, fmt.Sprintf("cgroup %s still has processes %v", p, procs))
			}
			return nil
		})
	}
	return leaks
}

func cgroupProcs(dir string) []int {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeCgroups deletes the cgroup tree below CgroupParent, deepest first;
// with kill it first SIGKILLs every process in it.
func (d *Daemon) removeCgroups(kill bool) {
	for _, top := range d.cgroupDirs() {
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, dir := range dirs {
			if kill {
				for _, pid := range cgroupProcs(dir) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			for i := 0; i < 20; i++ {
				if err := syscall.Rmdir(dir); err == nil || os.IsNotExist(err) || !kill {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// forceCleanup removes what a leaking berthd left, after it stopped, so that
// one failing test does not poison the machine: processes naming our
// directories, runc containers, cgroups and mounts.
func (d *Daemon) forceCleanup() {
	for _, p := range d.processes() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	ids, _ := d.runcList()
	for _, id := range ids {
		_ = exec.Command(Runc(), "--root", d.RuncRoot(), "delete", "--force", id).Run()
	}
	d.removeCgroups(true)
	for _, m := range d.mounts() {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}
