package e2e

import (
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestInvalidPodSandbox(t *testing.T) {
	d := framework.Shared(t)
	cases := map[string]func(*runtimeapi.PodSandboxConfig){
		"no config":   nil,
		"no metadata": func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil },
		"no name":     func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			var cfg *runtimeapi.PodSandboxConfig
			if mutate != nil {
				cfg = d.PodConfig(t, "invalid")
				mutate(cfg)
			}
			_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			wantCode(t, "RunPodSandbox "+name, err, codes.InvalidArgument)
			if got := podIDs(t, d, nil); len(got) != 0 {
				t.Errorf("pods listed after a failed RunPodSandbox: %v", got)
			}
		})
	}
}

// TestInvalidContainer sends each bad CreateContainer to a ready pod, checks
// the code, that nothing is listed afterwards, and that the name is free
// again (a valid create with the same metadata works). The leak check at the
// end of the test covers mounts, processes and runc state.
func TestInvalidContainer(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "badctr")
	podID := d.RunPod(t, pod)
	cases := []struct {
		name   string
		mutate func(*runtimeapi.ContainerConfig)
		code   codes.Code
	}{
		{"no metadata", func(c *runtimeapi.ContainerConfig) { c.Metadata = nil }, codes.InvalidArgument},
		{"no name", func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }, codes.InvalidArgument},
		{"no image spec", func(c *runtimeapi.ContainerConfig) { c.Image = nil }, codes.InvalidArgument},
		{"empty image", func(c *runtimeapi.ContainerConfig) { c.Image = &runtimeapi.ImageSpec{} }, codes.InvalidArgument},
		{"log path escapes", func(c *runtimeapi.ContainerConfig) { c.LogPath = "../x.log" }, codes.InvalidArgument},
		{"log path absolute", func(c *runtimeapi.ContainerConfig) { c.LogPath = "/tmp/x.log" }, codes.InvalidArgument},
		{"missing host path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: filepath.Join(d.Dir, "does-not-exist")}}
		}, codes.InvalidArgument},
		{"relative container path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "data", HostPath: d.Dir}}
		}, codes.InvalidArgument},
		{"relative working dir", func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "rel/dir" }, codes.InvalidArgument},
		{"unparsable image", func(c *runtimeapi.ContainerConfig) { c.Image = &runtimeapi.ImageSpec{Image: "UPPER::bad"} }, codes.InvalidArgument},
		{"absent image", func(c *runtimeapi.ContainerConfig) { c.Image = &runtimeapi.ImageSpec{Image: "berth.test/absent:1"} }, codes.NotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := framework.Sh("bad", "true")
			tc.mutate(cfg)
			framework.MakeLogDir(t, pod, cfg)
			mounts := d.Mounts()
			_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
			wantCode(t, "CreateContainer "+tc.name, err, tc.code)
			if got := containerIDs(t, d, nil); len(got) != 0 {
				t.Errorf("containers listed after a failed create: %v", got)
			}
			if after := d.Mounts(); !slices.Equal(after, mounts) {
				t.Errorf("mounts changed by a failed create: before %v, after %v", mounts, after)
			}
			for _, leak := range d.ContainerLeaks() {
				t.Errorf("after a failed create: %s", leak)
			}
		})
	}
	// Every failure released the name.
	id := d.CreateContainer(t, podID, pod, framework.Sh("bad", "true"))
	if _, err := d.Runtime.RemoveContainer(framework.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}

	t.Run("unknown pod", func(t *testing.T) {
		cfg := framework.Sh("orphan", "true")
		_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: "nope", Config: cfg, SandboxConfig: pod})
		wantCode(t, "CreateContainer in an unknown pod", err, codes.NotFound)
	})
	t.Run("stopped pod", func(t *testing.T) {
		if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		cfg := framework.Sh("late", "true")
		framework.MakeLogDir(t, pod, cfg)
		_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		wantCode(t, "CreateContainer in a stopped pod", err, codes.FailedPrecondition)
		if got := containerIDs(t, d, nil); len(got) != 0 {
			t.Errorf("containers listed after a failed create: %v", got)
		}
	})
}
