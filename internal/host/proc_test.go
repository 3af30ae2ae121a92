package host

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Stat
		bad  bool
	}{
		{line: "1234 (sleep) S 1 1234 1234 0 -1 4194304 85 0 0 0\n", want: Stat{State: 'S', PPID: 1, Pgrp: 1234, Session: 1234}},
		{line: "77 (conmon) Z 1 70 70 0 -1", want: Stat{State: 'Z', PPID: 1, Pgrp: 70, Session: 70}},
		// The command name may hold spaces and parentheses.
		{line: "5 (a) b) R c) R 4 3 2 0", want: Stat{State: 'R', PPID: 4, Pgrp: 3, Session: 2}},
		{line: "9 (x y) D 8 7 6", want: Stat{State: 'D', PPID: 8, Pgrp: 7, Session: 6}},
		{line: "42 (a (b) c) S 1 40 41 0 -1 4194560", want: Stat{State: 'S', PPID: 1, Pgrp: 40, Session: 41}},
		// A whole line: the start time is field 22.
		{line: "4242 (berth-pause) S 4200 4242 4242 0 -1 4194560 101 0 0 0 0 0 0 0 20 0 1 0 1234567 1265664 196 18446744073709551615", want: Stat{State: 'S', PPID: 4200, Pgrp: 4242, Session: 4242, StartTime: 1234567}},
		{line: "garbage", bad: true},
		{line: "", bad: true},
		{line: "1 (init", bad: true},
		{line: "1 (init) S 0", bad: true},
		{line: "1 (init) S 0 x 1", bad: true},
		{line: "1 (init) SS 0 1 1", bad: true},
	} {
		got, err := ParseStat([]byte(tc.line))
		if tc.bad {
			if err == nil {
				t.Errorf("ParseStat(%q) = %+v, want an error", tc.line, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseStat(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func TestParseNulList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                         nil,
		"\x00":                     nil,
		"runc\x00--root\x00/r\x00": {"runc", "--root", "/r"},
		"a\x00\x00b\x00":           {"a", "", "b"},
		"no-trailing-nul":          {"no-trailing-nul"},
	} {
		if got := ParseNulList([]byte(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("ParseNulList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvValue(t *testing.T) {
	for _, tc := range []struct {
		env, want string
		ok        bool
	}{
		{"", "", false},
		{"PATH=/bin\x00CNI_CONTAINERID=abc\x00", "abc", true},
		{"CNI_CONTAINERID=abc", "abc", true},
		{"X_CNI_CONTAINERID=abc\x00CNI_IFNAME=eth0", "", false},
		{"CNI_CONTAINERID=\x00CNI_COMMAND=DEL\x00", "", true},
		{"CNI_COMMAND=DEL\x00CNI_CONTAINERID=d\x00x", "d", true},
	} {
		if got, ok := EnvValue([]byte(tc.env), "CNI_CONTAINERID"); got != tc.want || ok != tc.ok {
			t.Errorf("EnvValue(%q) = %q, %v; want %q, %v", tc.env, got, ok, tc.want, tc.ok)
		}
	}
}

// fakeProcs builds a /proc with the given stat lines and command lines.
func fakeProcs(t *testing.T, procs map[string][2]string) Procs {
	root := t.TempDir()
	for pid, f := range procs {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"stat": f[0], "cmdline": f[1]} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return Procs{Root: root}
}

func TestProcsFake(t *testing.T) {
	p := fakeProcs(t, map[string][2]string{
		"10": {"10 (conmon) S 1 10 10 0", "/usr/bin/conmon\x00-b\x00/run/berth/containers/c1\x00"},
		"11": {"11 (runc) Z 10 10 10 0", ""},
		"12": {"12 (sleep) R 1 12 12 0", "sleep\x0030\x00"},
	})
	// Not a process: skipped by Find.
	if err := os.MkdirAll(filepath.Join(p.Root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := p.Find(func(pr Proc) bool {
		args, err := pr.Cmdline()
		return err == nil && slices.Contains(args, "/run/berth/containers/c1")
	})
	if !reflect.DeepEqual(got, []int{10}) {
		t.Errorf("Find by cmdline = %v, want [10]", got)
	}
	all := p.Find(func(Proc) bool { return true })
	slices.Sort(all)
	if !reflect.DeepEqual(all, []int{10, 11, 12}) {
		t.Errorf("Find all = %v", all)
	}
	for pid, want := range map[int]bool{10: true, 11: false, 12: true, 13: false} {
		if got := p.Alive(pid); got != want {
			t.Errorf("Alive(%d) = %v, want %v", pid, got, want)
		}
	}
	if !p.WaitGone(11, 0) || !p.WaitGone(13, 0) {
		t.Error("WaitGone of a zombie or a missing pid waited")
	}
	if p.WaitGone(10, 20*time.Millisecond) {
		t.Error("WaitGone of a live pid said gone")
	}
	if err := os.Symlink("socket:[42]", filepath.Join(p.Root, "10", "fd", "3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(p.Root, "10", "fd", "0")); err != nil {
		t.Fatal(err)
	}
	if fds, socks, err := p.Process(10).FDs(); err != nil || fds != 2 || socks != 1 {
		t.Errorf("FDs = %d, %d, %v; want 2, 1", fds, socks, err)
	}
	if _, _, err := p.Process(13).FDs(); err == nil {
		t.Error("FDs of a missing pid without error")
	}
}

// TestSystem runs the readers against the real /proc: a child that exits
// without being reaped is a zombie, so no longer Alive.
func TestSystem(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("berthd's own process not alive")
	}
	// sleep itself, not through a shell: /proc/<pid>/environ read while a
	// second exec replaces the image reads empty, which made this test flaky.
	cmd := exec.Command("sleep", "30")
	cmd.Env = []string{"BERTH_HOST_TEST=marker"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	var found []int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		found = Find(func(p Proc) bool {
			v, ok, err := p.Getenv("BERTH_HOST_TEST")
			return err == nil && ok && v == "marker"
		})
		if len(found) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if !reflect.DeepEqual(found, []int{pid}) {
		t.Errorf("Find by environment = %v, want [%d]", found, pid)
	}
	if st, err := Process(pid).Stat(); err != nil || st.PPID != os.Getpid() {
		t.Errorf("Stat = %+v, %v; want ppid %d", st, err, os.Getpid())
	}
	if WaitGone(pid, 20*time.Millisecond) {
		t.Fatal("WaitGone of a running process said gone")
	}
	cmd.Process.Kill()
	// Not reaped: a zombie until cmd.Wait.
	if !WaitGone(pid, 2*time.Second) {
		t.Fatal("killed child still alive")
	}
	if args, err := Process(pid).Cmdline(); err != nil || len(args) != 0 {
		t.Errorf("zombie cmdline = %q, %v; want empty", args, err)
	}
	cmd.Wait()
	if _, err := Process(pid).Stat(); err == nil {
		t.Error("reaped child still has a stat")
	}
	if Find(func(p Proc) bool { return p.PID == os.Getpid() }) != nil {
		t.Error("Find returned berthd itself")
	}
}
