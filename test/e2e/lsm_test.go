package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

func hostAppArmor() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	b, _ := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return strings.HasPrefix(string(b), "Y")
}

// TestSecurityModules checks what berth does with AppArmor and SELinux on
// this host, and that Status says so. With AppArmor, a container asking
// for RuntimeDefault (or nothing) runs under berth-default; without it,
// RuntimeDefault is refused and Status reports AppArmor disabled. SELinux
// options are ignored with a log line where SELinux is off.
func TestSecurityModules(t *testing.T) {
	d := framework.Shared(t)
	resp, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var sec struct {
		AppArmor, AppArmorDefaultProfile, SELinux string
	}
	if err := json.Unmarshal([]byte(resp.Info["security"]), &sec); err != nil {
		t.Fatalf("Status info security %q: %v", resp.Info["security"], err)
	}
	t.Logf("Status security: %+v", sec)

	pod := d.PodConfig(t, "lsm")
	podID := d.RunPod(t, pod)
	rd := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	cfg := framework.Sh("confined", "cat /proc/self/attr/current 2>&1 || echo none")
	cfg.Linux.SecurityContext.Apparmor = rd
	if hostAppArmor() {
		if sec.AppArmor != "enabled" || sec.AppArmorDefaultProfile != "berth-default" {
			t.Fatalf("Status security %+v on an AppArmor host", sec)
		}
		_, out := runToExit(t, d, podID, pod, cfg)
		if !strings.Contains(out, "berth-default") {
			t.Errorf("RuntimeDefault container runs under %q, want berth-default", out)
		}
	} else {
		if sec.AppArmor != "disabled" {
			t.Fatalf("Status security %+v on a host without AppArmor", sec)
		}
		framework.MakeLogDir(t, pod, cfg)
		_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "AppArmor is not enabled") {
			t.Errorf("RuntimeDefault AppArmor without AppArmor: %v, want InvalidArgument", err)
		}
	}

	if sec.SELinux != "disabled" {
		t.Skipf("SELinux is %s on this host", sec.SELinux)
	}
	off := logSize(d)
	labels := &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c7,c8"}
	spod := d.PodConfig(t, "selinux")
	spod.Linux.SecurityContext.SelinuxOptions = labels
	spodID := d.RunPod(t, spod)
	scfg := framework.Sh("labelled", "echo ok")
	scfg.Linux.SecurityContext.SelinuxOptions = labels
	if st, out := runToExit(t, d, spodID, spod, scfg); st.ExitCode != 0 || out != "ok" {
		t.Fatalf("container with selinux_options: exit %d %q", st.ExitCode, out)
	}
	log := logSince(t, d, off)
	for _, want := range []string{"pod selinux_options ignored", "container selinux_options ignored", "container_t"} {
		if !strings.Contains(log, want) {
			t.Errorf("berthd log lacks %q:\n%s", want, log)
		}
	}
}
