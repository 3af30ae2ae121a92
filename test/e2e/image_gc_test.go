package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// TestImageGCRace runs RemoveImage while a CreateContainer of that image is
// in flight, after the create resolved the image and before it recorded the
// container: the layers the container mounts must survive (the create
// leases them), so the create either succeeds with a rootfs that has every
// layer's files, or fails NotFound because the image was gone first.
//
// First deterministically: the create's runtime is a runc wrapper that
// waits at `runc create` (the rootfs is mounted, the record not yet
// written) until the test has removed the image. Then as kubelet's image GC
// would meet it: 20 rounds of CreateContainer against RemoveImage after a
// random delay.
func TestImageGCRace(t *testing.T) {
	gate := t.TempDir()
	wrapper := filepath.Join(gate, "gated-runc")
	script := fmt.Sprintf("#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = create ]; then\n    touch %[1]s/in-create\n    i=0; while [ ! -e %[1]s/go ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done\n  fi\ndone\nexec runc \"$@\"\n", gate)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("[runtimes.gated]\npath = %q\n", wrapper)})
	ctx := framework.Ctx(t)
	const ref = "e2e.local/gcrace:1"
	const marker = "the top layer is here"
	tarPath := testimage.TempTar(t, ref, false, testimage.Options{Layers: []testimage.Layer{
		{Files: map[string]string{"/gcrace/lower": "lower\n"}},
		{Files: map[string]string{"/gcrace/marker": marker}},
	}})

	// run creates a container of ref in a pod of handler and meanwhile
	// removes the image between before and after; it returns the create's
	// error or checks the container's rootfs.
	run := func(name, handler string, before, after func()) error {
		t.Helper()
		d.ImportImage(t, tarPath)
		pod := d.PodConfig(t, name)
		resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: handler})
		if err != nil {
			t.Fatal(err)
		}
		podID := resp.PodSandboxId
		defer func() {
			if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
				t.Error(err)
			}
			if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
				t.Error(err)
			}
		}()
		cfg := framework.ContainerConfig("app", "sleep", "3600")
		cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref}
		created := make(chan error, 1)
		var id string
		go func() {
			r, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
			if err == nil {
				id = r.ContainerId
			}
			created <- err
		}()
		before()
		if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("RemoveImage: %v", err)
		}
		after()
		if err := <-created; err != nil {
			return err
		}
		if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("%s: StartContainer of a container whose image was removed during its create: %v", name, err)
		}
		out, err := d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/gcrace/marker", "/gcrace/lower"}, Timeout: 10})
		if err != nil || out.ExitCode != 0 || !strings.HasPrefix(string(out.Stdout), marker) {
			t.Fatalf("%s: the container's rootfs lost its image layers to RemoveImage during create: %v, exit %d, %q %q",
				name, err, out.GetExitCode(), out.GetStdout(), out.GetStderr())
		}
		return nil
	}

	// Deterministic: RemoveImage while the create waits in `runc create`.
	err := run("gated", "gated", func() {
		if err := framework.WaitFor(30*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(gate, "in-create"))
			return err == nil
		}); err != nil {
			t.Fatal("the create never reached the runtime")
		}
	}, func() {
		if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatalf("CreateContainer that had resolved the image before RemoveImage: %v", err)
	}

	// The loop: RemoveImage at a random moment of the create.
	outcomes := map[string]int{}
	for i := range 20 {
		err := run(fmt.Sprintf("loop-%d", i), "", func() { time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond) }, func() {})
		switch status.Code(err) {
		case codes.OK:
			outcomes["created"]++
		case codes.NotFound:
			outcomes["image gone first"]++
		default:
			t.Errorf("round %d: CreateContainer racing RemoveImage: %v (want success or NotFound)", i, err)
		}
	}
	t.Logf("CreateContainer against RemoveImage: %v", outcomes)

	// The pods are gone; the layers their containers kept after the image
	// went are collected at the next GC, here berthd's start.
	d.Restart(t)
	var info struct {
		ChainIDs []string `json:"chainIDs"`
	}
	if err := json.Unmarshal([]byte(imageStatus(t, d, d.BusyboxID, true).Info["info"]), &info); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(d.Root, "layers")); len(left) != len(info.ChainIDs) {
		t.Errorf("layer dirs after the restart's GC: %d, want busybox's %d", len(left), len(info.ChainIDs))
	}
}
