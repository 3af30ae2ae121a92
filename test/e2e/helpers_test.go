package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// wantCode fails t unless err carries the gRPC code want.
func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got code %v (%v), want %v", what, got, err, want)
	}
}

// podIDs lists pod ids matching filter.
func podIDs(t *testing.T, d *framework.Daemon, f *runtimeapi.PodSandboxFilter) []string {
	t.Helper()
	resp, err := d.Runtime.ListPodSandbox(framework.Ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: f})
	if err != nil {
		t.Fatalf("ListPodSandbox(%v): %v", f, err)
	}
	var ids []string
	for _, p := range resp.Items {
		ids = append(ids, p.Id)
	}
	sort.Strings(ids)
	return ids
}

// containerIDs lists container ids matching filter.
func containerIDs(t *testing.T, d *framework.Daemon, f *runtimeapi.ContainerFilter) []string {
	t.Helper()
	resp, err := d.Runtime.ListContainers(framework.Ctx(t), &runtimeapi.ListContainersRequest{Filter: f})
	if err != nil {
		t.Fatalf("ListContainers(%v): %v", f, err)
	}
	var ids []string
	for _, c := range resp.Containers {
		ids = append(ids, c.Id)
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func equalIDs(a, b []string) bool {
	return slices.Equal(a, b) || (len(a) == 0 && len(b) == 0)
}

// streamAll collects every message of a server stream.
func streamAll[T any](t *testing.T, recv func() (T, error)) []T {
	t.Helper()
	var out []T
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		out = append(out, m)
	}
}

// podProcs returns the pids in the cgroups below pod's cgroup parent in the
// memory hierarchy, by cgroup directory. berth puts each container's cgroup
// below its pod's parent, so a pod with one container gives that container.
func podProcs(t *testing.T, pod *runtimeapi.PodSandboxConfig) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	top := filepath.Join("/sys/fs/cgroup/memory", pod.Linux.CgroupParent)
	_ = filepath.WalkDir(top, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out[p] = append(out[p], pid)
			}
		}
		return nil
	})
	return out
}

// allProcs flattens podProcs.
func allProcs(t *testing.T, pod *runtimeapi.PodSandboxConfig) []int {
	var pids []int
	for _, p := range podProcs(t, pod) {
		pids = append(pids, p...)
	}
	sort.Ints(pids)
	return pids
}

// initPIDs returns the host pids of the container init processes (pid 1 in
// their own PID namespace) in the cgroups below pod's cgroup parent.
func initPIDs(t *testing.T, pod *runtimeapi.PodSandboxConfig) []int {
	t.Helper()
	var out []int
	for _, pid := range allProcs(t, pod) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// keyValues returns "key=value" lines of the form printed by the test scripts.
func keyValues(texts []string) map[string]string {
	out := map[string]string{}
	for _, s := range texts {
		if k, v, ok := strings.Cut(s, "="); ok {
			out[k] = v
		}
	}
	return out
}

// rawLayerImage is an image of one uncompressed layer holding raw (a tar
// built by hand, hostile or not) for this machine's platform.
func rawLayerImage(t *testing.T, raw []byte) (v1.Image, v1.Layer) {
	t.Helper()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img, layer
}
