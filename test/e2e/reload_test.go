package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// SIGHUP reloads what can be reloaded and never ends the daemon (it ends
// containerd); a config that no longer loads is reported and ignored.
func TestSIGHUPReloads(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{NoImage: true})
	hup := func(want string) {
		t.Helper()
		if err := syscall.Kill(d.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			data, _ := os.ReadFile(d.LogPath)
			if strings.Contains(string(data), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("berthd did not log %q after SIGHUP", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := d.Runtime.Version(framework.Ctx(t), &runtimeapi.VersionRequest{}); err != nil {
			t.Fatalf("berthd stopped answering after SIGHUP: %v", err)
		}
	}
	hup("SIGHUP: reloaded")
	if err := os.WriteFile(filepath.Join(d.Dir, "berth.toml"), []byte("log_level = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup("SIGHUP: config not reloaded")
}
