package framework

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLeakCheck plants one leak of each kind the check looks for and expects
// each to be reported, then cleaned up by forceCleanup.
func TestLeakCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("must run as root (mounts and cgroups)")
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d := &Daemon{Dir: dir, StateDir: filepath.Join(dir, "state"), CgroupParent: "/" + filepath.Base(dir) + "-" + randHex(3)}

	// A mount.
	mnt := filepath.Join(dir, "state", "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)

	// A process naming the directory, placed in a container-level cgroup.
	cmd := exec.Command("sh", "-c", "sleep 60", filepath.Join(dir, "state", "x"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	go cmd.Wait()
	cg := filepath.Join("/sys/fs/cgroup/pids", d.CgroupParent, "podx", "ctr")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	defer d.removeCgroups(true)
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A process of another daemon whose directory merely shares a prefix.
	other := exec.Command("sh", "-c", "sleep 60", dir+"0/state")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	go other.Wait()

	leaks := strings.Join(d.checkLeaks(false), "\n")
	for _, want := range []string{"mount left: " + mnt, "process left: pid " + strconv.Itoa(cmd.Process.Pid), "cgroup left: " + cg, "still has processes"} {
		if !strings.Contains(leaks, want) {
			t.Errorf("leaks lack %q:\n%s", want, leaks)
		}
	}
	if strings.Contains(leaks, strconv.Itoa(other.Process.Pid)) {
		t.Errorf("another daemon's process was reported:\n%s", leaks)
	}

	d.forceCleanup()
	time.Sleep(100 * time.Millisecond)
	if rest := d.checkLeaks(false); len(rest) > 0 {
		t.Errorf("left after forceCleanup: %v", rest)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", d.CgroupParent)); !os.IsNotExist(err) {
		t.Errorf("cgroup parent not removed: %v", err)
	}
}
