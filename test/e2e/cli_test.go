package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

// berthCLI runs the berth binary against d and returns its stdout, stderr
// and exit status.
func berthCLI(t *testing.T, d *framework.Daemon, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(framework.BerthBinary(t), append([]string{"--socket", d.Socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// TestCLIErrors checks the words and exit statuses of berth's errors
// against a real berthd: a registry that is down is berthd's answer, not a
// dead berthd; a stopped berthd is; a missing command exits 127.
func TestCLIErrors(t *testing.T) {
	d := framework.Shared(t)

	t.Run("registry down", func(t *testing.T) {
		reg := framework.StartRegistry(t, framework.RegistryOptions{})
		ref := reg.Ref("e2e/gone:v1")
		reg.Stop()
		_, stderr, code := berthCLI(t, d, "pull", ref)
		t.Logf("registry down: status %d: %s", code, stderr)
		if code != 125 || !strings.HasPrefix(stderr, "berth: pulling "+ref+": ") || !strings.Contains(stderr, reg.Host+" is unreachable") ||
			strings.Contains(stderr, "cannot reach berthd") || strings.Contains(stderr, "rpc error") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("pull from a stopped registry: status %d, stderr %q", code, stderr)
		}
	})

	t.Run("berthd down", func(t *testing.T) {
		d2 := framework.StartDaemon(t, framework.Options{NoImage: true})
		d2.Stop(t)
		_, stderr, code := berthCLI(t, d2, "pull", "busybox")
		t.Logf("berthd down: status %d: %s", code, stderr)
		if code != 125 || !strings.HasPrefix(stderr, "berth: pulling busybox: cannot reach berthd at unix://"+d2.Socket+" (from --socket): ") ||
			!(strings.Contains(stderr, "no socket at") || strings.Contains(stderr, "nothing listens on")) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("pull with berthd stopped: status %d, stderr %q", code, stderr)
		}
	})

	t.Run("exec of a missing command", func(t *testing.T) {
		pod := d.PodConfig(t, "cli-err")
		podID := d.RunPod(t, pod)
		id := d.RunContainer(t, podID, pod, framework.Sh("c", "sleep 1000"))
		_, stderr, code := berthCLI(t, d, "exec", id, "/no/such/cmd")
		if code != 127 {
			t.Errorf("exec of a missing command: status %d, stderr %q", code, stderr)
		}
		_, stderr, code = berthCLI(t, d, "exec", id, "sh", "-c", "exit 3")
		if code != 3 {
			t.Errorf("exec exit 3: status %d, stderr %q", code, stderr)
		}
		_, stderr, code = berthCLI(t, d, "exec", "no-such-container", "true")
		if code != 125 || stderr != "berth: no container matches \"no-such-container\"\n" {
			t.Errorf("exec in a missing container: status %d, stderr %q", code, stderr)
		}
	})
}
