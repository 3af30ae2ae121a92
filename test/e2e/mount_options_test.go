package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestMountOptions: CRI mount_options (CRI v0.37) are applied to the bind
// mount and seen from inside the container; Status says they are; an
// unknown option is refused with its name.
func TestMountOptions(t *testing.T) {
	d := framework.Shared(t)
	resp, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetFeatures().GetMountOptions() {
		t.Errorf("Status.features.mount_options is false")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pod := d.PodConfig(t, "mountopts")
	podID := d.RunPod(t, pod)

	// The same host dir twice: with options, and plain as the control.
	cfg := framework.Sh("opts", `
/plain/run.sh
/opts/run.sh || echo exec-denied
echo x > /opts/f 2>/dev/null || echo write-denied
echo x > /plain/f && echo plain-write-ok
grep ' /opts ' /proc/self/mountinfo | cut -d' ' -f6
`)
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/plain", HostPath: dir},
		{ContainerPath: "/opts", HostPath: dir, MountOptions: []string{"noexec", "nodev", "nosuid", "ro", "noatime"}},
	}
	st, out := runToExit(t, d, podID, pod, cfg)
	if st.ExitCode != 0 {
		t.Fatalf("exit %d, output %q", st.ExitCode, out)
	}
	lines := strings.Split(out, "\n")
	for _, want := range []string{"ran", "exec-denied", "write-denied", "plain-write-ok"} {
		if !slices.Contains(lines, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	var opts []string
	for _, l := range lines {
		if strings.HasPrefix(l, "ro,") || strings.HasPrefix(l, "rw,") {
			opts = strings.Split(l, ",")
		}
	}
	for _, want := range []string{"ro", "nosuid", "nodev", "noexec", "noatime"} {
		if !slices.Contains(opts, want) {
			t.Errorf("/opts mount options %v inside the container lack %q", opts, want)
		}
	}

	bad := framework.Sh("bad", "true")
	bad.Mounts = []*runtimeapi.Mount{{ContainerPath: "/opts", HostPath: dir, MountOptions: []string{"noexec", "sparkly"}}}
	framework.MakeLogDir(t, pod, bad)
	_, err = d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: bad, SandboxConfig: pod})
	wantCode(t, "CreateContainer with an unknown mount option", err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"sparkly"`) || !strings.Contains(msg, "mount_options") {
		t.Errorf("error %q should name the field and the option", msg)
	}
}
