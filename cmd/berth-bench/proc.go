package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Memory of one process, in MiB, from /proc.
type Memory struct {
	RSS     float64 `json:"rss_mib"`
	PSS     float64 `json:"pss_mib"`
	Anon    float64 `json:"rss_anon_mib"`
	File    float64 `json:"rss_file_mib"`
	Threads int     `json:"threads"`
}

// readMemory reads RSS (and its anonymous and file-backed parts) from
// /proc/<pid>/status and PSS from smaps_rollup.
func readMemory(pid int) (Memory, error) {
	var m Memory
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "VmRSS":
			m.RSS = kbToMiB(v)
		case "RssAnon":
			m.Anon = kbToMiB(v)
		case "RssFile":
			m.File = kbToMiB(v)
		case "Threads":
			m.Threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	pss, err := smapsField(pid, "Pss")
	if err != nil {
		return m, err
	}
	m.PSS = pss
	return m, nil
}

func smapsField(pid int, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return kbToMiB(v), nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/smaps_rollup", field, pid)
}

func kbToMiB(v string) float64 {
	kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
	return kb / 1024
}

// listenerPID finds the process that holds the listening unix socket at
// path: the daemon behind an endpoint, whatever its name.
func listenerPID(path string) (int, error) {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is
		// __SO_ACCEPTCON, a listening socket.
		f := strings.Fields(line)
		if len(f) >= 8 && f[7] == path {
			if flags, _ := strconv.ParseUint(f[3], 16, 32); flags&0x10000 != 0 {
				inodes["socket:["+f[6]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on %s", path)
	}
	for _, pid := range pids() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); inodes[l] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process holds the socket listening on %s", path)
}

func pids() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// procName is the file name of a process's argv[0] (its comm when the
// command line is empty): containerd-shim-runc-v2 is longer than comm's 15
// bytes.
func procName(pid int) string {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != "" {
		return filepath.Base(argv0)
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(comm))
}

// cmdline is pid's command line, NUL-separated ("" when gone).
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b)
}

// matching returns the processes whose name re matches, except those in
// skip with the same command line as then, and helpers waiting for a job
// (berthd's spare monitors, `berth-monitor --spare`): they hold no
// container.
func matching(re *regexp.Regexp, skip map[int]string) map[int]string {
	out := map[int]string{}
	if re == nil {
		return out
	}
	for _, pid := range pids() {
		cl := cmdline(pid)
		if was, ok := skip[pid]; ok && was == cl {
			continue
		}
		if args := strings.Split(cl, "\x00"); len(args) > 1 && args[1] == "--spare" {
			continue
		}
		if name := procName(pid); re.MatchString(name) {
			out[pid] = name
		}
	}
	return out
}

// HelperMemory sums the helpers a runtime started for the bench's pods.
type HelperMemory struct {
	// Processes per name (conmon; containerd-shim-runc-v2, pause).
	Count map[string]int `json:"count"`
	// PSS per name, summed.
	PSS map[string]float64 `json:"pss_mib"`
	// PerContainer is all helpers' PSS over the number of running
	// containers: what the runtime adds beside each workload.
	PerContainer float64 `json:"pss_per_container_mib"`
	// MedianPSS is the median PSS of one helper process, per name.
	MedianPSS  map[string]float64 `json:"median_pss_mib"`
	Containers int                `json:"containers"`
}

func helperMemory(procs map[int]string, containers int) HelperMemory {
	h := HelperMemory{Count: map[string]int{}, PSS: map[string]float64{}, MedianPSS: map[string]float64{}, Containers: containers}
	byName := map[string][]float64{}
	var total float64
	for pid, name := range procs {
		pss, err := smapsField(pid, "Pss")
		if err != nil {
			continue // exited meanwhile
		}
		byName[name] = append(byName[name], pss)
		h.Count[name]++
		h.PSS[name] += pss
		total += pss
	}
	for name, v := range byName {
		sort.Float64s(v)
		h.MedianPSS[name] = v[len(v)/2]
	}
	if containers > 0 {
		h.PerContainer = total / float64(containers)
	}
	return h
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cgroupRoots are the mount points of the host's cgroup hierarchies (one
// per v1 controller, or the v2 root).
func cgroupRoots() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var roots []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && (qf[0] == "cgroup" || qf[0] == "cgroup2") {
			roots = append(roots, pf[4])
		}
	}
	return roots
}

// removeCgroupTree removes the (empty) cgroup directories below rel in
// every hierarchy, deepest first, as kubelet removes its pod cgroups.
func removeCgroupTree(rel string) []error {
	var errs []error
	for _, root := range cgroupRoots() {
		top := filepath.Join(root, rel)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
