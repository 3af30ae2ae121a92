package conmon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-project/berth/internal/cgroups"
)

// testCgroupParent holds the cgroups of this package's test containers. It
// is per package and process, so parallel packages do not share it, and it
// is removed at the end: runc deletes a container's cgroup, not the parent
// it created for it.
var testCgroupParent = fmt.Sprintf("/berth-test-conmon-%d", os.Getpid())

// testMonitor is the monitor binary the tests run: each test runs once with
// berth-monitor (built from cmd/berth-monitor) and once with conmon, since
// berthd runs either and both must behave alike. "" skips the real-monitor
// tests (berth-monitor could not be built, or conmon is not installed).
var testMonitor string

func TestMain(m *testing.M) {
	code := 0
	dir, err := os.MkdirTemp("", "berth-monitor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, mon := range testMonitors(dir) {
		fmt.Printf("== monitor %s\n", mon.name)
		testMonitor = mon.path
		if c := m.Run(); c != 0 {
			fmt.Printf("== FAIL with monitor %s\n", mon.name)
			code = c
		}
	}
	os.RemoveAll(dir)
	if err := cgroups.Remove(testCgroupParent); err != nil {
		fmt.Fprintln(os.Stderr, "leaked test cgroup:", err)
		code = 1
	}
	os.Exit(code)
}

type monitorBin struct{ name, path string }

// testMonitors builds berth-monitor into dir and lists it and conmon.
func testMonitors(dir string) []monitorBin {
	var mons []monitorBin
	build := exec.Command(filepath.Join("..", "..", "..", "hack", "build-helpers.sh"), dir)
	if out, err := build.CombinedOutput(); err != nil {
		// No C compiler: the real-monitor tests skip, as without conmon.
		fmt.Fprintf(os.Stderr, "building berth-monitor: %v\n%s", err, out)
	} else {
		mons = append(mons, monitorBin{"berth-monitor", filepath.Join(dir, "berth-monitor")})
	}
	if p, err := exec.LookPath("conmon"); err == nil {
		mons = append(mons, monitorBin{"conmon", p})
	}
	if len(mons) == 0 {
		mons = append(mons, monitorBin{"none", ""})
	}
	return mons
}
