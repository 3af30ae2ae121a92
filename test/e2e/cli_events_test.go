package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestCLIEventsSince: a container exits while berthd is down; after the
// restart `berth events --since` prints the exit berthd replays, and plain
// `berth events` (new events only) does not.
func TestCLIEventsSince(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	pod := d.PodConfig(t, "cli-since")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("span", "sleep 2; exit 3"))
	d.Stop(t)
	time.Sleep(3 * time.Second)
	d.Restart(t)

	out, stderr, code := berthCLI(t, d, "events", "--container", id, "--since", "5m", "--count", "1")
	if code != 0 || !strings.Contains(out, " stopped  "+id[:13]+"  span  pod="+framework.Namespace+"/cli-since exit=3 reason=Error\n") {
		t.Errorf("events --since after a restart: status %d, out %q, stderr %q", code, out, stderr)
	}

	cmd := exec.Command(framework.BerthBinary(t), "--socket", d.Socket, "events", "--container", id)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if o.Len() != 0 {
		t.Errorf("events without --since printed the replay: %q (stderr %q)", o.String(), e.String())
	}
}
