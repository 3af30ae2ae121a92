package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

func imageStatus(t *testing.T, d *framework.Daemon, ref string, verbose bool) *runtimeapi.ImageStatusResponse {
	t.Helper()
	resp, err := d.Image.ImageStatus(framework.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: verbose})
	if err != nil {
		t.Fatalf("ImageStatus(%s): %v", ref, err)
	}
	return resp
}

func TestImages(t *testing.T) {
	d := framework.Shared(t)
	ctx := framework.Ctx(t)

	list, err := d.Image.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var busybox *runtimeapi.Image
	for _, img := range list.Images {
		if img.Id == d.BusyboxID {
			busybox = img
		}
	}
	if busybox == nil {
		t.Fatalf("ListImages lacks the imported busybox %s: %v", d.BusyboxID, list.Images)
	}
	if !slices.Contains(busybox.RepoTags, testimage.BusyboxRef) || busybox.Size == 0 {
		t.Errorf("busybox image %v: want repo tag %s and a size", busybox, testimage.BusyboxRef)
	}
	if !strings.HasPrefix(d.BusyboxID, "sha256:") {
		t.Errorf("image id %q: want the config digest sha256:...", d.BusyboxID)
	}

	refs := append([]string{testimage.BusyboxRef, d.BusyboxID}, busybox.RepoDigests...)
	for _, ref := range refs {
		st := imageStatus(t, d, ref, false).Image
		if st == nil || st.Id != d.BusyboxID {
			t.Errorf("ImageStatus(%s) = %v, want id %s", ref, st, d.BusyboxID)
		}
	}
	if v := imageStatus(t, d, testimage.BusyboxRef, true); len(v.Info) == 0 {
		t.Errorf("verbose ImageStatus has no info (want the image config)")
	}
	if st := imageStatus(t, d, "berth.test/absent:1", false); st.Image != nil {
		t.Errorf("ImageStatus of an absent image = %v, want none", st.Image)
	}

	filtered, err := d.Image.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: testimage.BusyboxRef}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(filtered.Images) != 1 || filtered.Images[0].Id != d.BusyboxID {
		t.Errorf("ListImages filtered by %s: %v", testimage.BusyboxRef, filtered.Images)
	}

	stream, err := d.Image.StreamImages(ctx, &runtimeapi.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var streamed, listed []string
	for _, m := range streamAll(t, stream.Recv) {
		for _, img := range m.Images {
			streamed = append(streamed, img.Id)
		}
	}
	for _, img := range list.Images {
		listed = append(listed, img.Id)
	}
	sort.Strings(streamed)
	sort.Strings(listed)
	if !slices.Equal(streamed, listed) {
		t.Errorf("StreamImages %v, ListImages %v", streamed, listed)
	}

	fs, err := d.Image.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.ImageFilesystems) == 0 {
		t.Fatalf("ImageFsInfo lists no image filesystem")
	}
	for _, u := range fs.ImageFilesystems {
		if u.GetUsedBytes().GetValue() == 0 || u.GetInodesUsed().GetValue() == 0 || u.GetFsId().GetMountpoint() == "" || u.Timestamp == 0 {
			t.Errorf("image filesystem usage %v: want bytes, inodes, mountpoint and timestamp", u)
		}
	}
}

// TestImportAndRemoveImage imports an OCI-layout tar with its own user and
// removes it by tag.
func TestImportAndRemoveImage(t *testing.T) {
	d := framework.Shared(t)
	ctx := framework.Ctx(t)
	const ref = "berth.test/removable:1"
	ids := d.ImportImage(t, testimage.TempTar(t, ref, true, testimage.Options{
		Layers: []testimage.Layer{{Files: map[string]string{"/hello": "hi\n"}}},
		User:   "user",
	}))
	if len(ids) != 1 {
		t.Fatalf("import: ids %q", ids)
	}
	st := imageStatus(t, d, ref, false).Image
	if st == nil || st.Id != ids[0] || !slices.Contains(st.RepoTags, ref) {
		t.Fatalf("ImageStatus(%s) = %v, want id %s", ref, st, ids[0])
	}
	if st.Username != "user" && st.GetUid().GetValue() != 1000 {
		t.Errorf("image user: username %q uid %v, want user", st.Username, st.Uid)
	}
	// Importing twice is harmless and gives the same id.
	if again := d.ImportImage(t, testimage.TempTar(t, ref, true, testimage.Options{
		Layers: []testimage.Layer{{Files: map[string]string{"/hello": "hi\n"}}},
		User:   "user",
	})); !slices.Equal(again, ids) {
		t.Errorf("re-import ids %q, want %q", again, ids)
	}

	if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage: %v", err)
	}
	if st := imageStatus(t, d, ref, false).Image; st != nil {
		t.Errorf("ImageStatus after RemoveImage = %v, want none", st)
	}
	if st := imageStatus(t, d, ids[0], false).Image; st != nil {
		t.Errorf("ImageStatus by id after RemoveImage = %v, want none", st)
	}
	if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Errorf("second RemoveImage: %v (want no error: the CRI says it is idempotent)", err)
	}
	// The busybox image, sharing nothing with it but the base layer, is intact.
	if st := imageStatus(t, d, testimage.BusyboxRef, false).Image; st == nil {
		t.Errorf("busybox image gone after removing another image")
	}

	// Remove by id too, and run a container afterwards from what is left.
	ids2 := d.ImportImage(t, testimage.TempTar(t, "berth.test/removable:2", false, testimage.Options{
		Layers: []testimage.Layer{{Files: map[string]string{"/hello2": "hi\n"}}},
	}))
	if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ids2[0]}}); err != nil {
		t.Fatalf("RemoveImage by id: %v", err)
	}
	if st := imageStatus(t, d, "berth.test/removable:2", false).Image; st != nil {
		t.Errorf("ImageStatus by tag after RemoveImage by id = %v", st)
	}
	pod := d.PodConfig(t, "afterrm")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("c", "cat /bin/busybox > /dev/null && echo ok")
	id := d.RunContainer(t, podID, pod, cfg)
	framework.WaitForLog(t, framework.LogPath(pod, cfg), "ok", 20*time.Second)
	_ = id
}

// TestPinnedImages checks images.pinned_images: the images those refs name
// are listed with pinned set (kubelet's image GC skips them), a SIGHUP
// applies a new list, and RemoveImage still removes a pinned image.
func TestPinnedImages(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{Config: "[images]\npinned_images = [\"" + testimage.BusyboxRef + "\"]\n"})
	ctx := framework.Ctx(t)
	const other = "berth.test/pin-later:1"
	otherID := d.ImportImage(t, testimage.TempTar(t, other, false, testimage.Options{
		Layers: []testimage.Layer{{Files: map[string]string{"/x": "x\n"}}},
	}))[0]
	pinned := func() map[string]bool {
		t.Helper()
		resp, err := d.Image.ListImages(ctx, &runtimeapi.ListImagesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, img := range resp.Images {
			m[img.Id] = img.Pinned
		}
		return m
	}
	if p := pinned(); !p[d.BusyboxID] || p[otherID] {
		t.Fatalf("ListImages pinned %v, want busybox (%s) only", p, d.BusyboxID)
	}
	if st := imageStatus(t, d, d.BusyboxID, false).Image; !st.GetPinned() {
		t.Errorf("ImageStatus(busybox by id) pinned = false")
	}

	cfg := filepath.Join(d.Dir, "berth.toml")
	if err := os.WriteFile(cfg, []byte("[images]\npinned_images = [\""+other+"\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(d.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p := pinned(); p[d.BusyboxID] || !p[otherID]; p = pinned() {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP with a new pinned_images: pinned %v, want %s only", p, other)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: other}}); err != nil {
		t.Fatalf("RemoveImage of a pinned image: %v", err)
	}
	if st := imageStatus(t, d, other, false).Image; st != nil {
		t.Errorf("pinned image still there after RemoveImage: %v", st)
	}
}
