package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestSecondDaemonRefused starts a second berthd on a live daemon's socket:
// it must refuse, say why, and leave the first one serving.
func TestSecondDaemonRefused(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{NoImage: true})
	dir := filepath.Join(d.Dir, "second")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, framework.BerthdBinary(),
		"--root", filepath.Join(dir, "root"), "--state-dir", filepath.Join(dir, "state"), "--socket", d.Socket).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second berthd on a live socket kept running:\n%s", out)
	}
	if err == nil {
		t.Errorf("a second berthd on a live socket exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), d.Socket) {
		t.Errorf("the refusal does not name the socket %s:\n%s", d.Socket, out)
	}
	if _, err := d.Runtime.Version(framework.Ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("first berthd stopped serving after the refused start: %v", err)
	}
	if fi, err := os.Stat(d.Socket); err != nil {
		t.Errorf("socket: %v", err)
	} else if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %s mode %v, want 0660", d.Socket, fi.Mode().Perm())
	}
}

func TestConfigDefault(t *testing.T) {
	out, err := exec.Command(framework.BerthdBinary(), "config", "default").CombinedOutput()
	if err != nil {
		t.Fatalf("berthd config default: %v\n%s", err, out)
	}
	for _, want := range []string{"/var/lib/berth", "/run/berth", "#"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("berthd config default lacks %q:\n%s", want, out)
		}
	}
}

// TestStacksOnUSR1: SIGUSR1 makes berthd log every goroutine's stack and
// go on serving.
func TestStacksOnUSR1(t *testing.T) {
	d := framework.Shared(t)
	if err := syscall.Kill(d.PID(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool {
		b, _ := os.ReadFile(d.LogPath)
		return strings.Contains(string(b), "SIGUSR1: goroutine stacks") && strings.Contains(string(b), "goroutine 1 [")
	}) {
		t.Fatal("no goroutine stacks in berthd's log after SIGUSR1")
	}
	if _, err := d.Runtime.Version(framework.Ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("berthd after SIGUSR1: %v", err)
	}
}
