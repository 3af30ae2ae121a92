// Package host is the one place berth reads the host: processes in /proc,
// the cgroup mount and its mode, and the kernel and security features that
// container specs depend on. Parsing is kept apart from reading so the
// parsers have table tests over sample /proc text; the readers take a root
// so tests can point them at a fake /proc.
package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Procs reads processes from a procfs mounted at Root ("" is /proc).
type Procs struct{ Root string }

// System is the host's own /proc.
var System = Procs{}

func (p Procs) root() string {
	if p.Root == "" {
		return "/proc"
	}
	return p.Root
}

// Proc is one process of a Procs; its readers fail once it has exited.
type Proc struct {
	PID  int
	root string
}

// Process returns pid's process (which may not exist).
func (p Procs) Process(pid int) Proc { return Proc{PID: pid, root: p.root()} }

// Find returns the pids of the processes, other than berthd itself, for
// which match returns true. Processes that exit meanwhile are skipped by
// match seeing read errors.
func (p Procs) Find(match func(Proc) bool) []int {
	entries, err := os.ReadDir(p.root())
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if match(p.Process(pid)) {
			out = append(out, pid)
		}
	}
	return out
}

// Alive says pid exists and is not a zombie: the one liveness check. A
// zombie has finished; what remains is for its parent (or init) to reap.
func (p Procs) Alive(pid int) bool {
	st, err := p.Process(pid).Stat()
	return err == nil && st.State != 'Z'
}

// WaitGone polls until pid is no longer Alive or timeout passes, and says
// whether it went. It serves processes that are not berthd's children
// (conmon once daemonized, a crashed berthd's leftovers), which it cannot
// wait(2) for.
func (p Procs) WaitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Find is System.Find: processes of the host's /proc that match.
func Find(match func(Proc) bool) []int { return System.Find(match) }

// Alive is System.Alive: pid exists on the host and is not a zombie.
func Alive(pid int) bool { return System.Alive(pid) }

// WaitGone is System.WaitGone.
func WaitGone(pid int, timeout time.Duration) bool { return System.WaitGone(pid, timeout) }

// Process is System.Process.
func Process(pid int) Proc { return System.Process(pid) }

func (p Proc) read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(p.root, strconv.Itoa(p.PID), name))
}

// Cmdline returns the process's arguments (none for a zombie or a kernel
// thread).
func (p Proc) Cmdline() ([]string, error) {
	b, err := p.read("cmdline")
	if err != nil {
		return nil, err
	}
	return ParseNulList(b), nil
}

// Getenv returns the value of key in the process's initial environment
// (/proc/<pid>/environ, readable for berthd's own uid or as root).
func (p Proc) Getenv(key string) (string, bool, error) {
	b, err := p.read("environ")
	if err != nil {
		return "", false, err
	}
	v, ok := EnvValue(b, key)
	return v, ok, nil
}

// Stat returns the parsed /proc/<pid>/stat line.
func (p Proc) Stat() (Stat, error) {
	b, err := p.read("stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// FDs counts the process's open files and, of those, sockets.
func (p Proc) FDs() (fds, sockets int, err error) {
	dir := filepath.Join(p.root, strconv.Itoa(p.PID), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	return len(ents), sockets, nil
}

// Stat is what berth uses of a /proc/<pid>/stat line.
type Stat struct {
	State   byte // R, S, D, Z, T, ...
	PPID    int
	Pgrp    int
	Session int
	// StartTime is when the process started, in clock ticks after boot
	// (field 22): with the pid, it names one process across pid reuse.
	// Zero when the line is cut short before it.
	StartTime uint64
}

// ParseStat parses a /proc/<pid>/stat line. The command name (field 2) is
// in parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, errors.New("stat line has no ')'")
	}
	// state ppid pgrp session ...
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("short stat line %q", b)
	}
	var st Stat
	st.State = f[0][0]
	var errs [3]error
	st.PPID, errs[0] = strconv.Atoi(f[1])
	st.Pgrp, errs[1] = strconv.Atoi(f[2])
	st.Session, errs[2] = strconv.Atoi(f[3])
	if err := errors.Join(errs[:]...); err != nil {
		return Stat{}, fmt.Errorf("stat line %q: %w", b, err)
	}
	if len(f) > 19 {
		v, err := strconv.ParseUint(f[19], 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("stat line %q: start time: %w", b, err)
		}
		st.StartTime = v
	}
	return st, nil
}

// ParseNulList splits NUL-terminated strings (cmdline, environ).
func ParseNulList(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// EnvValue returns the value of key in a NUL-separated environment.
func EnvValue(environ []byte, key string) (string, bool) {
	prefix := []byte(key + "=")
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v), true
		}
	}
	return "", false
}
