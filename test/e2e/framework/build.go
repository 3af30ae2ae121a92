package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/test/testimage"
)

// Paths of the binaries Main built.
var (
	berthdBin string
	berthBin  string // empty when cmd/berth does not exist yet
)

// BerthdBinary returns the berthd Main built.
func BerthdBinary() string { return berthdBin }

// BerthBinary returns the berth CLI Main built, failing t when there is none.
func BerthBinary(t testing.TB) string {
	t.Helper()
	if berthBin == "" {
		t.Fatal("cmd/berth was not built (it does not exist in this tree)")
	}
	return berthBin
}

// Main is the e2e packages' TestMain: it checks the host binaries, builds
// berthd (and berth) once, runs the tests, then stops the shared daemon and
// fails the run if it leaked.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests run real containers and must run as root")
		return 1
	}
	for _, bin := range []string{"runc", "conmon"} {
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is not installed; run hack/install.sh\n", bin)
			return 1
		}
	}
	if _, err := os.Stat(testimage.BusyboxBinary); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s is missing (Debian's busybox-static); run hack/install.sh\n", testimage.BusyboxBinary)
		return 1
	}
	binDir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	defer testimage.Cleanup()
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	berthdBin = filepath.Join(binDir, "berthd")
	if out, err := goBuild(root, berthdBin, "./cmd/berthd"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/berthd: %v\n%s", err, out)
		return 1
	}
	// berthd finds berth-pause (pods sharing a PID namespace) and
	// berth-monitor (every container) next to itself. They are C, built
	// by the script every build uses.
	helpers := exec.Command(filepath.Join(root, "hack", "build-helpers.sh"), binDir)
	if out, err := helpers.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: hack/build-helpers.sh: %v\n%s", err, out)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "berth")); err == nil {
		berthBin = filepath.Join(binDir, "berth")
		if out, err := goBuild(root, berthBin, "./cmd/berth"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/berth: %v\n%s", err, out)
			return 1
		}
	}
	defer keepIPForward()()
	code := m.Run()
	if leaks := CloseShared(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: the shared berthd leaked at shutdown:\n  %s\n", strings.Join(leaks, "\n  "))
		code = 1
	}
	return code
}

func goBuild(root, out, pkg string) ([]byte, error) {
	// The same static build hack/install.sh makes (see there).
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// moduleRoot is the directory of go.mod, found from the working directory
// (go test runs a package's tests in its own directory).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the berth module")
	}
	return filepath.Dir(gomod), nil
}
