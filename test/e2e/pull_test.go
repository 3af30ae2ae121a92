package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomData is n incompressible bytes.
func randomData(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pullImage(ctx context.Context, d *framework.Daemon, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	resp, err := d.Image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		return "", err
	}
	return resp.ImageRef, nil
}

func mustPull(t *testing.T, d *framework.Daemon, ref string, auth *runtimeapi.AuthConfig) string {
	t.Helper()
	id, err := pullImage(framework.Ctx(t), d, ref, auth)
	if err != nil {
		t.Fatalf("PullImage(%s): %v", ref, err)
	}
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("PullImage(%s) returned %q, want the image id sha256:...", ref, id)
	}
	return id
}

// runImage runs script in a container of image and returns its output lines.
func runImage(t *testing.T, d *framework.Daemon, image, script string) []string {
	t.Helper()
	pod := d.PodConfig(t, "pull-"+randomHex(t, 3))
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("c", script)
	cfg.Image = &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: image}
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
	out := framework.LogTexts(t, framework.LogPath(pod, cfg))
	if st.ExitCode != 0 {
		t.Fatalf("container of %s exited %d: %q", image, st.ExitCode, out)
	}
	return out
}

// noPartialData fails t when the image store's temp dir still holds
// something a pull wrote (it is cleaned up right after a failed pull).
func noPartialData(t *testing.T, d *framework.Daemon) {
	t.Helper()
	tmp := filepath.Join(d.Root, "tmp")
	var left []string
	err := framework.WaitFor(10*time.Second, func() bool {
		entries, _ := os.ReadDir(tmp)
		left = left[:0]
		for _, e := range entries {
			left = append(left, e.Name())
		}
		return len(left) == 0
	})
	if err != nil {
		t.Errorf("partial pull data left in %s: %v", tmp, left)
	}
}

func absent(t *testing.T, d *framework.Daemon, ref string) {
	t.Helper()
	if st := imageStatus(t, d, ref, false).Image; st != nil {
		t.Errorf("image %s is listed after a failed pull: %v", ref, st)
	}
}

// layeredImage is busybox plus two layers whose upper one deletes a file
// and a directory of the lower and makes a directory opaque.
func layeredImage(t *testing.T, marker string) v1.Image {
	t.Helper()
	img, err := testimage.Build(testimage.Options{Layers: []testimage.Layer{
		{Files: map[string]string{
			"/data/keep": "keep\n", "/data/gone": "gone\n", "/data/dir/f": "f\n",
			"/opq/old": "old\n", "/opq/sub/old2": "old2\n", "/marker": marker,
		}},
		{
			Whiteouts: []string{"/data/gone", "/data/dir"},
			Opaque:    []string{"/opq"},
			Files:     map[string]string{"/opq/new": "new\n", "/data/added": "added\n"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

const fsScript = "find /data /opq | sort; cat /marker"

func wantFS(marker string) []string {
	return []string{"/data", "/data/added", "/data/keep", "/opq", "/opq/new", marker}
}

// TestPullAndRun pulls from a plain loopback registry by tag, by digest and
// through a multi-platform index, and runs the image: the container sees
// exactly the filesystem the layers and their whiteouts make.
func TestPullAndRun(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	marker := "amd64-" + randomHex(t, 4)
	img := layeredImage(t, marker)
	manifestDigest := reg.Push(t, "e2e/fs:v1", img)

	// A multi-platform index: this platform gets img, arm64 another image.
	other, err := testimage.Build(testimage.Options{Layers: []testimage.Layer{{Files: map[string]string{"/marker": "arm64"}}}})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := other.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture, cf.Variant = "arm64", "v8"
	if other, err = mutate.ConfigFile(other, cf); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	indexDigest := reg.PushIndex(t, "e2e/fs:multi", idx)

	ref := reg.Ref("e2e/fs:v1")
	id := mustPull(t, d, ref, nil)
	st := imageStatus(t, d, id, false).Image
	if st == nil || !slices.Contains(st.RepoTags, ref) || !slices.Contains(st.RepoDigests, reg.Ref("e2e/fs@"+manifestDigest)) {
		t.Fatalf("ImageStatus(%s) = %v: want tag %s and digest %s", id, st, ref, manifestDigest)
	}
	if got := runImage(t, d, ref, fsScript); !slices.Equal(got, wantFS(marker)) {
		t.Errorf("container filesystem:\n%q\nwant\n%q", got, wantFS(marker))
	}

	// By digest, and through the index (tag and digest): the same image,
	// which gains the names.
	for _, r := range []string{reg.Ref("e2e/fs@" + manifestDigest), reg.Ref("e2e/fs:multi"), reg.Ref("e2e/fs@" + indexDigest), reg.Ref("e2e/fs:v1@" + manifestDigest)} {
		if got := mustPull(t, d, r, nil); got != id {
			t.Errorf("PullImage(%s) = %s, want the same image %s", r, got, id)
		}
	}
	st = imageStatus(t, d, reg.Ref("e2e/fs:multi"), false).Image
	if st == nil || st.Id != id || !slices.Contains(st.RepoDigests, reg.Ref("e2e/fs@"+indexDigest)) {
		t.Errorf("after pulling the index: %v, want id %s with digest %s", st, id, indexDigest)
	}
	if got := runImage(t, d, reg.Ref("e2e/fs@"+indexDigest), "cat /marker"); !slices.Equal(got, []string{marker}) {
		t.Errorf("index pull ran %q, want this platform's image (%s)", got, marker)
	}

	// Unknown tag and repository: NotFound naming the reference.
	for _, r := range []string{reg.Ref("e2e/fs:nope"), reg.Ref("e2e/absent:1")} {
		_, err := pullImage(framework.Ctx(t), d, r, nil)
		wantCode(t, "pull "+r, err, codes.NotFound)
		if err != nil && !strings.Contains(err.Error(), r) {
			t.Errorf("pull %s: error %q does not name the reference", r, err)
		}
	}
}

// TestPullAuth pulls from an htpasswd registry with the CRI credentials.
func TestPullAuth(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{Auth: true})
	marker := "auth-" + randomHex(t, 4)
	img, err := testimage.Build(testimage.Options{Layers: []testimage.Layer{{Files: map[string]string{"/marker": marker}}}})
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "e2e/private:1", img)
	ref := reg.Ref("e2e/private:1")
	logStart := logSize(d)

	_, err = pullImage(framework.Ctx(t), d, ref, nil)
	wantCode(t, "pull without credentials", err, codes.Unauthenticated)
	wrong := "wrong-" + randomHex(t, 6)
	_, err = pullImage(framework.Ctx(t), d, ref, &runtimeapi.AuthConfig{Username: reg.User, Password: wrong})
	wantCode(t, "pull with a wrong password", err, codes.Unauthenticated)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), wrong) {
		t.Errorf("wrong password: error %v; want it to say authentication failed, without the password", err)
	}
	absent(t, d, ref)

	id := mustPull(t, d, ref, &runtimeapi.AuthConfig{Username: reg.User, Password: reg.Password, ServerAddress: reg.Host})
	// The base64 "auth" form works too.
	basic := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if got := mustPull(t, d, ref, &runtimeapi.AuthConfig{Auth: basic}); got != id {
		t.Errorf("pull with auth field = %s, want %s", got, id)
	}
	if got := runImage(t, d, id, "cat /marker"); !slices.Equal(got, []string{marker}) {
		t.Errorf("ran %q, want %s", got, marker)
	}
	log := logSince(t, d, logStart)
	for _, secret := range []string{reg.Password, wrong, basic} {
		if strings.Contains(log, secret) {
			t.Errorf("berthd's log holds a credential")
		}
	}
}

// TestPullConfiguredHosts runs a berthd with a registry config dir: a TLS
// registry with its CA, Docker Hub mirrored by a dead then a live mirror
// (short names), a credentials file, and a short progress timeout.
func TestPullConfiguredHosts(t *testing.T) {
	plain := framework.StartRegistry(t, framework.RegistryOptions{})
	tlsReg := framework.StartRegistry(t, framework.RegistryOptions{TLS: true})
	authReg := framework.StartRegistry(t, framework.RegistryOptions{Auth: true})
	stallProxy := framework.StartRegistryProxy(t, plain.Host)

	marker := "conf-" + randomHex(t, 4)
	img, err := testimage.Build(testimage.Options{Layers: []testimage.Layer{{Files: map[string]string{"/marker": marker}}}})
	if err != nil {
		t.Fatal(err)
	}
	tlsReg.Push(t, "e2e/secure:1", img)
	authReg.Push(t, "e2e/private:1", img)
	plain.Push(t, "library/e2e-short:latest", img)
	big, err := testimage.Build(testimage.Options{Layers: []testimage.Layer{{Files: map[string]string{"/big": randomData(t, 2<<20)}}}})
	if err != nil {
		t.Fatal(err)
	}
	plain.Push(t, "e2e/stall:1", big)

	dead, err := deadPort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, tlsReg.Host, "hosts.toml"), fmt.Sprintf("server = %q\nca = %q\n", "https://"+tlsReg.Host, tlsReg.CAFile))
	writeFile(t, filepath.Join(dir, "docker.io", "hosts.toml"), fmt.Sprintf(
		"# a dead mirror first, then a live one\n[host.\"http://127.0.0.1:%d\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n[host.\"http://%s\"]\n", dead, plain.Host))
	writeFile(t, filepath.Join(dir, "config.json"), fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`,
		authReg.Host, base64.StdEncoding.EncodeToString([]byte(authReg.User+":"+authReg.Password))))
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("[images]\nregistry_config_dir = %q\npull_progress_timeout = \"2s\"\n", dir)})

	// TLS with the configured CA.
	id := mustPull(t, d, tlsReg.Ref("e2e/secure:1"), nil)
	// Short name through Docker Hub's mirrors: the dead one is skipped.
	if got := mustPull(t, d, "e2e-short", nil); got != id {
		t.Errorf("short-name pull = %s, want %s", got, id)
	}
	if st := imageStatus(t, d, "docker.io/library/e2e-short:latest", false).Image; st == nil || st.Id != id {
		t.Errorf("short-name image status %v, want %s", st, id)
	}
	// Credentials from the file.
	if got := mustPull(t, d, authReg.Ref("e2e/private:1"), nil); got != id {
		t.Errorf("pull with file credentials = %s, want %s", got, id)
	}
	if got := runImage(t, d, "e2e-short", "cat /marker"); !slices.Equal(got, []string{marker}) {
		t.Errorf("ran %q, want %s", got, marker)
	}

	// A registry that stops sending: the progress timeout ends the pull.
	stallProxy.SetStalled(true)
	start := time.Now()
	_, err = pullImage(framework.Ctx(t), d, stallProxy.Host+"/e2e/stall:1", nil)
	took := time.Since(start)
	stallProxy.SetStalled(false)
	if err == nil || !strings.Contains(err.Error(), "no progress") {
		t.Errorf("stalled pull: %v, want a progress-timeout error", err)
	}
	if took > 20*time.Second {
		t.Errorf("stalled pull took %v with a 2s progress timeout", took)
	}
	absent(t, d, stallProxy.Host+"/e2e/stall:1")
	noPartialData(t, d)

	// Without the CA (the shared daemon has no host config), TLS fails.
	shared := framework.Shared(t)
	if _, err := pullImage(framework.Ctx(t), shared, tlsReg.Ref("e2e/secure:1"), nil); err == nil {
		t.Errorf("pull from a TLS registry whose CA is not configured succeeded")
	}
}

// deadPort is a loopback port nothing listens on (taken and released).
func deadPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPullHostileLayer pulls an image whose layer has a ../ entry: the pull
// fails clearly and nothing is written outside the layer dir.
func TestPullHostileLayer(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	escape := "escape-" + randomHex(t, 4)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range []string{"ok", "../" + escape, "../../" + escape, "../../../" + escape} {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: 3})
		_, _ = tw.Write([]byte("bad"))
	}
	_ = tw.Close()
	raw := buf.Bytes()
	img, _ := rawLayerImage(t, raw)
	reg.Push(t, "e2e/evil:1", img)
	ref := reg.Ref("e2e/evil:1")
	_, err := pullImage(framework.Ctx(t), d, ref, nil)
	if err == nil {
		t.Fatal("pull of a layer with a ../ entry succeeded")
	}
	if !strings.Contains(err.Error(), "layer") || !strings.Contains(err.Error(), "../"+escape) {
		t.Errorf("hostile layer error %q: want it to name the layer and the escaping entry", err)
	}
	for _, p := range []string{filepath.Join(d.Root, escape), filepath.Join(d.Root, "tmp", escape), filepath.Join(d.Root, "layers", escape), filepath.Join(d.Dir, escape), "/" + escape} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the hostile layer wrote %s", p)
			os.Remove(p)
		}
	}
	absent(t, d, ref)
	noPartialData(t, d)
}

// bigImage is an image of n layers of size bytes of random data each.
func bigImage(t *testing.T, base v1.Image, n, size int) v1.Image {
	t.Helper()
	var layers []testimage.Layer
	for i := range n {
		layers = append(layers, testimage.Layer{Files: map[string]string{fmt.Sprintf("/blob%d-%s", i, randomHex(t, 3)): randomData(t, size)}})
	}
	img, err := testimage.Build(testimage.Options{Base: base, Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPullRegistryDies kills the registry mid-pull: the pull fails, no
// partial image or data is left, and a retry after a restart succeeds.
func TestPullRegistryDies(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	proxy := framework.StartRegistryProxy(t, reg.Host)
	reg.Push(t, "e2e/dies:1", bigImage(t, empty.Image, 3, 3<<20))
	proxy.SetRate(2 << 20)
	ref := proxy.Host + "/e2e/dies:1"

	errc := make(chan error, 1)
	go func() {
		_, err := pullImage(context.Background(), d, ref, nil)
		errc <- err
	}()
	if err := framework.WaitFor(20*time.Second, func() bool { return proxy.Served() > 1<<20 }); err != nil {
		t.Fatalf("the pull did not start downloading: %v", err)
	}
	reg.Stop()
	proxy.Abort()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("pull succeeded although the registry died")
		}
		t.Logf("pull with a dead registry: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("pull did not fail within 30s of the registry dying")
	}
	absent(t, d, ref)
	noPartialData(t, d)

	reg.Restart(t)
	proxy.SetRate(0)
	mustPull(t, d, ref, nil)
}

// TestPullConcurrent pulls one image three times at once, and an image
// sharing its lower layers: every blob is fetched once.
func TestPullConcurrent(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	proxy := framework.StartRegistryProxy(t, reg.Host)
	a := bigImage(t, empty.Image, 3, 1<<20)
	b := bigImage(t, a, 1, 1<<20) // a's three layers plus one
	reg.Push(t, "e2e/conc:a", a)
	reg.Push(t, "e2e/conc:b", b)
	proxy.SetRate(4 << 20) // slow enough for the pulls to overlap

	refs := []string{proxy.Host + "/e2e/conc:a", proxy.Host + "/e2e/conc:a", proxy.Host + "/e2e/conc:b", proxy.Host + "/e2e/conc:a"}
	ids := make([]string, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, r := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = pullImage(framework.Ctx(t), d, r, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent PullImage(%s): %v", refs[i], err)
		}
	}
	if ids[0] != ids[1] || ids[0] != ids[3] || ids[2] == ids[0] {
		t.Errorf("ids %v: want the same id for the same image", ids)
	}
	gets := proxy.BlobGets()
	var want []string
	for _, img := range []v1.Image{a, b} {
		m, _ := img.Manifest()
		want = append(want, m.Config.Digest.String())
		for _, l := range m.Layers {
			want = append(want, l.Digest.String())
		}
	}
	for _, dg := range want {
		if gets[dg] != 1 {
			t.Errorf("blob %s fetched %d times, want once (all: %v)", dg, gets[dg], gets)
		}
	}
}

// TestPullCancel gives up on a stalled pull from the client: the daemon
// aborts it and leaves nothing behind; a later pull works.
func TestPullCancel(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	proxy := framework.StartRegistryProxy(t, reg.Host)
	reg.Push(t, "e2e/cancel:1", bigImage(t, empty.Image, 2, 1<<20))
	ref := proxy.Host + "/e2e/cancel:1"
	proxy.SetStalled(true)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := pullImage(ctx, d, ref, nil)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("pull past its deadline: %v, want DeadlineExceeded", err)
	}
	noPartialData(t, d)
	absent(t, d, ref)
	proxy.SetStalled(false)
	mustPull(t, d, ref, nil)
}

func logSize(d *framework.Daemon) int64 {
	fi, err := os.Stat(d.LogPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func logSince(t *testing.T, d *framework.Daemon, off int64) string {
	t.Helper()
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}
