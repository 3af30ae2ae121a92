package e2e

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// TestImageVolume: Mount.image mounts another image's files read-only,
// whole or at image_sub_path; ContainerStatus reports the image's id; the
// image cannot be removed while mounted, and can once the pod is gone.
func TestImageVolume(t *testing.T) {
	d := framework.Shared(t)
	ctx := framework.Ctx(t)
	const ref = "berth.test/data-volume:1"
	ids := d.ImportImage(t, testimage.TempTar(t, ref, true, testimage.Options{
		Layers: []testimage.Layer{
			{Files: map[string]string{"/data/greeting": "hello from the data image\n", "/top": "top\n"}},
			// A symlink that would lead out of the image on the host.
			{Symlinks: map[string]string{"/escape": "/etc"}, Files: map[string]string{"/data/second": "layer two\n"}},
		},
	}))
	imageID := ids[0]
	pod := d.PodConfig(t, "imagevol")
	podID := d.RunPod(t, pod)

	cfg := framework.Sh("reader", `cat /whole/data/greeting /whole/data/second /sub/greeting; ls /sub; `+
		`touch /whole/x 2>/dev/null || echo read-only; ls /escape/ 2>&1 | head -1; sleep 300`)
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/whole", Readonly: true, Image: &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: ref}},
		{ContainerPath: "/sub", Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "data"},
	}
	id := d.RunContainer(t, podID, pod, cfg)
	var out string
	if err := framework.WaitFor(20*time.Second, func() bool {
		out = strings.Join(framework.LogTexts(t, framework.LogPath(pod, cfg)), "\n")
		return strings.Contains(out, "read-only")
	}); err != nil {
		t.Fatalf("container output %q: %v", out, err)
	}
	for _, want := range []string{"hello from the data image", "layer two", "greeting\nsecond", "read-only"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	st := d.ContainerStatus(t, id)
	refs := map[string]string{}
	for _, m := range st.Mounts {
		refs[m.ContainerPath] = m.GetImage().GetImageRef()
	}
	if refs["/whole"] != imageID || refs["/sub"] != imageID {
		t.Errorf("status mounts' image refs %v, want %s", refs, imageID)
	}

	// Mounted: RemoveImage is refused, by tag and by id.
	for _, r := range []string{ref, imageID} {
		_, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: r}})
		wantCode(t, "RemoveImage of a mounted image volume", err, codes.FailedPrecondition)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, id) {
			t.Errorf("error %q should name the container", msg)
		}
	}
	// A missing sub path, a writable image volume and an absolute sub path are refused.
	for name, m := range map[string]*runtimeapi.Mount{
		"missing sub path": {ContainerPath: "/v", Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "nope"},
		"writable":         {ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: ref}},
		"escaping":         {ContainerPath: "/v", Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "../etc"},
		"not pulled":       {ContainerPath: "/v", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "berth.test/never-pulled:1"}},
	} {
		bad := framework.Sh("bad", "true")
		bad.Mounts = []*runtimeapi.Mount{m}
		_, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: bad, SandboxConfig: pod})
		want := codes.InvalidArgument
		if name == "not pulled" {
			want = codes.NotFound
		}
		wantCode(t, "CreateContainer with an image volume ("+name+")", err, want)
	}

	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Errorf("RemoveImage once the pod is gone: %v", err)
	}
}
