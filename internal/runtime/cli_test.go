package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestRtMessage(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		jsonOnly       bool
	}{
		{"json error wins", `{"level":"warning","msg":"w","time":"x"}` + "\n" + `{"level":"error","msg":"container does not exist","time":"x"}` + "\n", "container does not exist", false},
		{"plain", "container does not exist\n", "container does not exist", false},
		{"plain ignored", "some process output\n", "", true},
		{"last error", `{"level":"error","msg":"a"}` + "\n" + `{"level":"fatal","msg":"b"}`, "b", false},
		{"empty", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rtMessage([]byte(tc.in), tc.jsonOnly); got != tc.want {
				t.Fatalf("rtMessage = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGlobalArgs(t *testing.T) {
	r := &cli{path: "/usr/sbin/runc", root: "/run/berth/runc", args: []string{"--systemd-cgroup"}}
	got := strings.Join(r.GlobalArgs(), " ")
	want := "--root /run/berth/runc --log-format json --systemd-cgroup"
	if got != want {
		t.Fatalf("GlobalArgs = %q, want %q", got, want)
	}
}

// rtTestRuntime returns a runc Runtime with its own root, skipping when the
// test cannot run containers.
func rtTestRuntime(t *testing.T) *cli {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	path, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox not installed")
	}
	return &cli{name: "runc", path: path, root: filepath.Join(t.TempDir(), "runc")}
}

// rtTestID gives a container id (and so cgroup) unique to this test process,
// since other test runs of the package may be going at the same time.
func rtTestID(name string) string {
	return fmt.Sprintf("berth-rt-%s-%d", name, os.Getpid())
}

// rtTestBundle builds a busybox bundle running sh -c script.
func rtTestBundle(t *testing.T, r *cli, id, script string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(bin, "sh")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(r.path, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/bin/sh", "-c", script}
	spec.Process.Env = append(spec.Process.Env, "PATH=/bin")
	spec.Linux.CgroupsPath = testCgroupParent + "/" + id
	data, err = json.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rtTestCreate creates a container with runc directly (stdio to /dev/null)
// and registers its forced removal.
func rtTestCreate(t *testing.T, r *cli, id, script string) {
	t.Helper()
	bundle := rtTestBundle(t, r, id, script)
	args := append(r.GlobalArgs(), "create", "--bundle", bundle, id)
	// runc create hands its stdio to the container, so output must go to a
	// file, not a pipe that would stay open for the container's life.
	errFile, err := os.Create(filepath.Join(t.TempDir(), "create.err"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd := exec.Command(r.path, args...)
	cmd.Stdout, cmd.Stderr = errFile, errFile
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(errFile.Name())
		t.Fatalf("runc create: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), id, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func rtWaitStatus(t *testing.T, r *cli, id, want string) *State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.State(context.Background(), id)
		if err != nil {
			t.Fatalf("State: %v", err)
		}
		if st.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %q, want %q", st.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRuntimeLifecycle(t *testing.T) {
	r := rtTestRuntime(t)
	ctx := context.Background()
	id := rtTestID("life")

	if _, err := r.State(ctx, id); !errdefs.IsNotFound(err) {
		t.Fatalf("State of absent container: err = %v, want NotFound", err)
	}
	if err := r.Start(ctx, id); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "runc start "+id+": container does not exist") {
		t.Fatalf("Start of absent container: err = %v", err)
	}
	if err := r.Delete(ctx, id, false); err != nil {
		t.Fatalf("Delete of absent container: %v", err)
	}

	rtTestCreate(t, r, id, "trap 'exit 7' TERM; while true; do sleep 0.1; done")
	st := rtWaitStatus(t, r, id, StatusCreated)
	if st.ID != id || st.Pid <= 0 || st.Bundle == "" || st.Created.IsZero() {
		t.Fatalf("State = %+v", st)
	}
	if err := r.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	rtWaitStatus(t, r, id, StatusRunning)
	if err := r.Start(ctx, id); err == nil || !strings.HasPrefix(err.Error(), "runc start "+id+": ") {
		t.Fatalf("second Start: err = %v, want the runtime's message", err)
	} else {
		t.Logf("second Start: %v", err)
	}

	list, err := r.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].Status != StatusRunning {
		t.Fatalf("List = %+v", list)
	}

	limit := int64(64)
	if err := r.Update(ctx, id, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/pids" + testCgroupParent + "/" + id + "/pids.max"); err == nil {
		if strings.TrimSpace(string(b)) != "64" {
			t.Fatalf("pids.max = %q after Update", b)
		}
	}

	// Exec is TestExecProcess.

	if err := r.Kill(ctx, id, syscall.SIGTERM, false); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	rtWaitStatus(t, r, id, StatusStopped)
	if err := r.Kill(ctx, id, syscall.SIGKILL, false); err == nil {
		t.Fatal("Kill of stopped container succeeded")
	}
	if err := r.Delete(ctx, id, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := r.State(ctx, id); !errdefs.IsNotFound(err) {
		t.Fatalf("State after Delete: err = %v, want NotFound", err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids" + testCgroupParent + "/" + id); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cgroup left after Delete: %v", err)
	}
}

func TestRuntimeKillAllAndForceDelete(t *testing.T) {
	r := rtTestRuntime(t)
	ctx := context.Background()
	id := rtTestID("force")
	rtTestCreate(t, r, id, "sleep 1000 & sleep 1000")
	if err := r.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	rtWaitStatus(t, r, id, StatusRunning)
	if err := r.Kill(ctx, id, syscall.SIGKILL, true); err != nil {
		t.Fatalf("Kill --all: %v", err)
	}
	rtWaitStatus(t, r, id, StatusStopped)
	if err := r.Delete(ctx, id, true); err != nil {
		t.Fatalf("Delete --force: %v", err)
	}
	if err := r.Delete(ctx, id, true); err != nil {
		t.Fatalf("second Delete --force: %v", err)
	}
}

func TestRuntimeContextDeadline(t *testing.T) {
	r := rtTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	_, err := r.List(ctx)
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Fatalf("List with expired context: err = %v", err)
	}
}

// TestRuntimeDefaultTimeout: a runtime command whose caller set no deadline
// is still bounded, so a hanging runtime cannot hold exit handling or
// cleanup for ever.
func TestRuntimeDefaultTimeout(t *testing.T) {
	hang := filepath.Join(t.TempDir(), "hanging-runtime")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { rtDefaultTimeout = d }(rtDefaultTimeout)
	rtDefaultTimeout = 200 * time.Millisecond
	r := &cli{name: "hanging", path: hang}
	start := time.Now()
	err := r.Delete(context.Background(), "abc", true)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Delete on a hanging runtime took %v with a 200ms default timeout", took)
	}
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "hanging delete abc") {
		t.Errorf("Delete on a hanging runtime: err = %v, want a deadline error naming the command", err)
	}
	// A caller's own deadline is kept as it is.
	rtDefaultTimeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.State(ctx, "abc"); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("State with a deadline on a hanging runtime: err = %v", err)
	}
}
