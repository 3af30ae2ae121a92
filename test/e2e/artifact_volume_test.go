package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// TestArtifactVolume: an OCI artifact (empty config, artifactType, file
// layers with titles) pulled from a registry is listed like an image, is
// mounted read-only by Mount.image whole, at a directory sub path and at a
// file sub path, is not runnable, cannot be removed while mounted and can
// be after; an artifact whose title leads out ("../") is refused at pull.
func TestArtifactVolume(t *testing.T) {
	d := framework.Shared(t)
	ctx := framework.Ctx(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	files := []testimage.ArtifactFile{
		{Title: "greeting.txt", Content: "hello from an artifact\n"},
		{Title: "conf/settings.yaml", Content: "level: 3\n"},
	}
	digest := reg.PushArtifact(t, "e2e/artifact:1", testimage.Artifact{Type: "application/vnd.berth.test.v1", Files: files})
	ref := reg.Ref("e2e/artifact:1")

	id := mustPull(t, d, ref, nil)
	if id != digest {
		t.Errorf("PullImage ref %s, want the artifact's manifest digest %s", id, digest)
	}
	st := imageStatus(t, d, ref, true)
	if st.Image == nil {
		t.Fatalf("ImageStatus(%s) is empty after the pull", ref)
	}
	size := uint64(len(files[0].Content) + len(files[1].Content))
	if st.Image.Id != id || st.Image.Size != size || !slices.Contains(st.Image.RepoTags, ref) ||
		!slices.Contains(st.Image.RepoDigests, reg.Ref("e2e/artifact@"+digest)) {
		t.Errorf("ImageStatus %v, want id %s, size %d, tag %s and digest", st.Image, id, size, ref)
	}
	if info := st.Info["info"]; !strings.Contains(info, "conf/settings.yaml") || !strings.Contains(info, "application/vnd.berth.test.v1") {
		t.Errorf("verbose ImageStatus info %q does not describe the artifact", info)
	}
	list, err := d.Image.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, img := range list.Images {
		listed = listed || img.Id == id
	}
	if !listed {
		t.Errorf("ListImages lacks the artifact %s", id)
	}

	pod := d.PodConfig(t, "artifactvol")
	podID := d.RunPod(t, pod)
	// Not runnable.
	_, err = d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "run-artifact"}, Image: &runtimeapi.ImageSpec{Image: ref}, Command: []string{"/greeting.txt"},
	}})
	wantCode(t, "CreateContainer with an artifact as its image", err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "OCI artifact") || !strings.Contains(msg, ref) {
		t.Errorf("error %q should say that %s is an OCI artifact", msg, ref)
	}

	cfg := framework.Sh("reader", `cat /art/greeting.txt /art/conf/settings.yaml; echo "dir: $(ls /conf) $(cat /conf/settings.yaml)"; `+
		`echo "file: $(cat /greet)"; touch /art/x 2>/dev/null || echo read-only; sleep 300`)
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/art", Readonly: true, Image: &runtimeapi.ImageSpec{Image: id, UserSpecifiedImage: ref}},
		{ContainerPath: "/conf", Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "conf"},
		{ContainerPath: "/greet", Readonly: true, Image: &runtimeapi.ImageSpec{Image: id}, ImageSubPath: "greeting.txt"},
	}
	cid := d.RunContainer(t, podID, pod, cfg)
	var out string
	if err := framework.WaitFor(20*time.Second, func() bool {
		out = strings.Join(framework.LogTexts(t, framework.LogPath(pod, cfg)), "\n")
		return strings.Contains(out, "read-only")
	}); err != nil {
		t.Fatalf("container output %q: %v", out, err)
	}
	for _, want := range []string{"hello from an artifact", "level: 3", "dir: settings.yaml level: 3", "file: hello from an artifact", "read-only"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	for _, m := range d.ContainerStatus(t, cid).Mounts {
		if got := m.GetImage().GetImageRef(); got != id {
			t.Errorf("status mount %s reports image %q, want %s", m.ContainerPath, got, id)
		}
	}

	// Mounted: RemoveImage is refused.
	_, err = d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	wantCode(t, "RemoveImage of a mounted artifact", err, codes.FailedPrecondition)
	// A sub path the artifact lacks.
	bad := framework.Sh("bad", "true")
	bad.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "nope"}}
	_, err = d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: bad, SandboxConfig: pod})
	wantCode(t, "CreateContainer with a missing artifact sub path", err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"nope" does not exist in OCI artifact`) || !strings.Contains(msg, "conf/settings.yaml") {
		t.Errorf("error %q should name the sub path and the artifact's files", msg)
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
	absent(t, d, ref)

	// A title that leads out of the mount is refused at pull, naming it.
	reg.PushArtifact(t, "e2e/artifact:evil", testimage.Artifact{Type: "application/vnd.berth.test.v1", Files: []testimage.ArtifactFile{
		{Title: "fine.txt", Content: "fine\n"}, {Title: "../evil", Content: "evil\n"},
	}})
	evil := reg.Ref("e2e/artifact:evil")
	_, err = pullImage(ctx, d, evil, nil)
	wantCode(t, "PullImage of an artifact with a ../ title", err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"../evil"`) || !strings.Contains(msg, evil) {
		t.Errorf("error %q should name the artifact and the title", msg)
	}
	absent(t, d, evil)
	noPartialData(t, d)
}

// TestArtifactVolumeUserNamespace: in a pod in a user namespace the
// artifact's files are idmapped like the rootfs: readable, owned by root
// inside, whole and at a file sub path.
func TestArtifactVolumeUserNamespace(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	reg.PushArtifact(t, "e2e/artifact:userns", testimage.Artifact{Type: "application/vnd.berth.test.v1", Files: []testimage.ArtifactFile{
		{Title: "data/value", Content: "mapped\n"},
	}})
	ref := reg.Ref("e2e/artifact:userns")
	id := mustPull(t, d, ref, nil)
	pod := d.PodConfig(t, "artifact-userns")
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(runtimeapi.NamespaceMode_POD,
		&runtimeapi.IDMapping{ContainerId: 0, HostId: usernsHost, Length: 65536})
	podID := d.RunPod(t, pod)
	t.Cleanup(func() {
		ctx := framework.Ctx(t)
		d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
		d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
		d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}})
	})
	cfg := framework.Sh("inside", `cat /art/data/value /value; stat -c 'owner %u' /art/data/value /value; echo ready; exec sleep 300`)
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/art", Readonly: true, Image: &runtimeapi.ImageSpec{Image: id}},
		{ContainerPath: "/value", Readonly: true, Image: &runtimeapi.ImageSpec{Image: id}, ImageSubPath: "data/value"},
	}
	d.RunContainer(t, podID, pod, cfg)
	var texts []string
	for _, l := range framework.WaitForLog(t, framework.LogPath(pod, cfg), "ready", 20*time.Second) {
		texts = append(texts, strings.TrimSpace(l.Text))
	}
	if out := strings.Join(texts, "\n"); out != "mapped\nmapped\nowner 0\nowner 0\nready" {
		t.Errorf("container output %q, want the file twice, owned by root inside", out)
	}
}
