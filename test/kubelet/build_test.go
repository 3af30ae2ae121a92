package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// KubeletVersion is the Kubernetes release whose kubelet runs here: the one
// place it is pinned. Its staging modules (k8s.io/api, client-go, …) are
// published as v0.<minor>.<patch>.
const KubeletVersion = "v1.37.2"

// stagingVersion maps v1.37.2 to v0.37.2.
func stagingVersion(v string) string { return "v0" + strings.TrimPrefix(v, "v1") }

// stagingReplace matches k8s.io/kubernetes' go.mod lines that point a
// staging module at its in-tree copy.
var stagingReplace = regexp.MustCompile(`(?m)^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/`)

// wrapperGoMod is the go.mod of a module that builds kubelet from the Go
// module proxy: k8s.io/kubernetes cannot be `go install`ed because its go.mod
// replaces the staging modules with local paths, so the wrapper replaces each
// with its published version instead.
func wrapperGoMod(kubernetesGoMod []byte, version string) (string, error) {
	goLine := regexp.MustCompile(`(?m)^go \S+$`).Find(kubernetesGoMod)
	if goLine == nil {
		return "", fmt.Errorf("k8s.io/kubernetes@%s go.mod has no go directive", version)
	}
	ms := stagingReplace.FindAllSubmatch(kubernetesGoMod, -1)
	if len(ms) == 0 {
		return "", fmt.Errorf("k8s.io/kubernetes@%s go.mod replaces no staging module", version)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "module berth.test/kubelet\n\n%s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", goLine, version)
	for _, m := range ms {
		fmt.Fprintf(&b, "\t%s => %s %s\n", m[1], m[1], stagingVersion(version))
	}
	b.WriteString(")\n")
	return b.String(), nil
}

// kubeletBinary builds kubelet KubeletVersion from the Go module proxy, once
// per version: it is kept in the user cache dir (a cold build takes about 10
// minutes on 2 cores; the Go build cache makes later ones quick).
func kubeletBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(cache, "berth", "kubelet-"+KubeletVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	dl := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+KubeletVersion)
	dl.Dir = os.TempDir() // outside berth's module: a plain download
	out, err := dl.Output()
	if err != nil {
		t.Fatalf("go mod download k8s.io/kubernetes@%s: %v\n%s", KubeletVersion, err, out)
	}
	var mod struct{ GoMod, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.GoMod == "" {
		t.Fatalf("go mod download k8s.io/kubernetes@%s: %v %s", KubeletVersion, err, mod.Error)
	}
	kgomod, err := os.ReadFile(mod.GoMod)
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := wrapperGoMod(kgomod, KubeletVersion)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	// The version kubelet reports (and checks its compatibility version
	// against) is stamped at link time, as Kubernetes' own build does.
	pkg := "k8s.io/component-base/version"
	minor := strings.Split(KubeletVersion, ".")[1]
	ldflags := fmt.Sprintf("-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean",
		pkg, KubeletVersion, pkg, pkg, minor, pkg)
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin+".tmp", "k8s.io/kubernetes/cmd/kubelet")
	build.Dir = src
	// Static, like the released kubelet; -mod=mod fills go.sum from the proxy.
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kubelet %s: %v\n%s", KubeletVersion, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built kubelet %s in %v", KubeletVersion, time.Since(start).Round(time.Second))
	return bin
}

func TestWrapperGoMod(t *testing.T) {
	in := []byte("module k8s.io/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/api v0.0.0\n\nreplace (\n" +
		"\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/cri-api => ./staging/src/k8s.io/cri-api\n" +
		"\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n")
	got, err := wrapperGoMod(in, "v1.37.2")
	if err != nil {
		t.Fatal(err)
	}
	want := "module berth.test/kubelet\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v1.37.2\n\nreplace (\n" +
		"\tk8s.io/api => k8s.io/api v0.37.2\n\tk8s.io/cri-api => k8s.io/cri-api v0.37.2\n)\n"
	if got != want {
		t.Errorf("wrapperGoMod:\n%s\nwant:\n%s", got, want)
	}
	if _, err := wrapperGoMod([]byte("module x\n"), "v1.37.2"); err == nil {
		t.Error("wrapperGoMod of a go.mod without go directive: no error")
	}
}
