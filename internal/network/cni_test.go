package network

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/sandbox"
)

// fakePlugin is a shell script CNI plugin that logs each call (command,
// interface, netns, args and the runtimeConfig it got) to calls and
// answers ADD with one address on the interface; "fail" fails ADD.
const fakePlugin = `#!/bin/sh
stdin=$(cat)
rc=$(printf '%s' "$stdin" | tr -d ' \n' | grep -o '"runtimeConfig":{[^}]*}' || true)
echo "$(basename $0) $CNI_COMMAND $CNI_IFNAME netns=$CNI_NETNS args=$CNI_ARGS $rc" >> CALLS
[ "$CNI_COMMAND" = ADD ] || exit 0
if [ "$(basename $0)" = fail ]; then
  echo '{"cniVersion": "1.0.0", "code": 100, "msg": "fail says no"}'
  exit 1
fi
addr=10.9.0.7/24
[ "$CNI_IFNAME" = lo ] && addr=127.0.0.1/8
echo "{\"cniVersion\": \"1.0.0\", \"interfaces\": [{\"name\": \"$CNI_IFNAME\", \"sandbox\": \"$CNI_NETNS\"}], \"ips\": [{\"address\": \"$addr\", \"interface\": 0}]}"
`

func fakeCNI(t *testing.T) (bin, calls string) {
	t.Helper()
	bin = t.TempDir()
	calls = filepath.Join(bin, "calls.log")
	script := strings.ReplaceAll(fakePlugin, "CALLS", calls)
	for _, name := range []string{"loopback", "fakenet", "fakeport", "portmap", "fail"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin, calls
}

func readCalls(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(path)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func newTestManager(t *testing.T, bin, conflist string) (*Manager, string) {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "10-fake.conflist", conflist)
	m, err := New(Config{ConfDir: dir, BinDirs: []string{bin}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Status(); err != nil {
		t.Fatal(err)
	}
	return m, filepath.Join(dir, "10-fake.conflist")
}

const fakeConflist = `{"cniVersion": "1.0.0", "name": "fake", "plugins": [
  {"type": "fakenet"},
  {"type": "fakeport", "capabilities": {"portMappings": true}}]}`

func TestSetupTeardown(t *testing.T) {
	bin, calls := fakeCNI(t)
	m, _ := newTestManager(t, bin, fakeConflist)
	p := &sandbox.Sandbox{ID: "pod1", Name: "web", Namespace: "ns", UID: "u1", Namespaces: map[string]string{"net": "/nonexistent/netns"}}
	cfg := &runtimeapi.PodSandboxConfig{PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}}}
	ips, err := m.Setup(context.Background(), p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != 1 || ips[0] != "10.9.0.7" {
		t.Errorf("ips = %v", ips)
	}
	got := readCalls(t, calls)
	want := []string{"fakenet ADD eth0", "fakeport ADD eth0"}
	if len(got) != len(want) {
		t.Fatalf("calls %q, want %v", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w+" netns=/nonexistent/netns args=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=u1") {
			t.Errorf("call %d = %q, want %q with the pod's netns and CNI_ARGS", i, got[i], w)
		}
	}
	if !strings.Contains(got[1], `"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"`) || strings.Contains(got[0], "portMappings") {
		t.Errorf("portMappings must reach the plugin that declares them, only: %q", got)
	}

	// Teardown: reverse order, cached args, no netns (it is not a live one).
	if err := m.Teardown(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	got = readCalls(t, calls)
	want = []string{"fakeport DEL eth0 netns= ", "fakenet DEL eth0 netns= "}
	if len(got) != len(want) {
		t.Fatalf("calls %q, want %v", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("call %d = %q, want %q", i, got[i], w)
		}
	}
	if !strings.Contains(got[0], `"hostPort":8080`) {
		t.Errorf("DEL did not get the cached portMappings: %q", got[0])
	}
	// Again: nothing cached, a best-effort DEL, no error.
	if err := m.Teardown(context.Background(), p); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

func TestSetupFailureUndoes(t *testing.T) {
	bin, calls := fakeCNI(t)
	m, file := newTestManager(t, bin, `{"cniVersion": "1.0.0", "name": "fake", "plugins": [{"type": "fakenet"}, {"type": "fail"}]}`)
	p := &sandbox.Sandbox{ID: "pod2", Namespaces: map[string]string{"net": "/nonexistent/netns"}}
	_, err := m.Setup(context.Background(), p, &runtimeapi.PodSandboxConfig{})
	if err == nil {
		t.Fatal("Setup succeeded with a failing plugin")
	}
	for _, want := range []string{file, `type="fail"`, "fail says no"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	got := readCalls(t, calls)
	wantPrefixes := []string{"fakenet ADD", "fail ADD", "fail DEL", "fakenet DEL"}
	if len(got) != len(wantPrefixes) {
		t.Fatalf("calls %q, want %v", got, wantPrefixes)
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("call %d = %q, want %q", i, got[i], w)
		}
	}
}

func TestSetupNotReady(t *testing.T) {
	bin, _ := fakeCNI(t)
	m, err := New(Config{ConfDir: t.TempDir(), BinDirs: []string{bin}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Setup(context.Background(), &sandbox.Sandbox{ID: "x", Namespaces: map[string]string{"net": "/ns"}}, &runtimeapi.PodSandboxConfig{})
	if err == nil || !strings.Contains(err.Error(), "pod network is not ready") {
		t.Errorf("err = %v", err)
	}
	// Nothing to tear down and no network: still fine.
	if err := m.Teardown(context.Background(), &sandbox.Sandbox{ID: "x"}); err != nil {
		t.Errorf("Teardown: %v", err)
	}
}

const portmapConflist = `{"cniVersion": "1.0.0", "name": "fake", "plugins": [
  {"type": "fakenet"},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}`

// TestPortmapOnlyWithPorts: a pod with no hostPort skips portmap at ADD and
// at DEL; one with a hostPort gets it at both, also after the config has
// changed (DEL replays the list cached at ADD), and a pod with no cached
// result gets the whole current list.
func TestPortmapOnlyWithPorts(t *testing.T) {
	bin, calls := fakeCNI(t)
	m, file := newTestManager(t, bin, portmapConflist)
	ctx := context.Background()
	plain := &sandbox.Sandbox{ID: "plain", Namespaces: map[string]string{"net": "/nonexistent/netns"}}
	ported := &sandbox.Sandbox{ID: "ported", Namespaces: map[string]string{"net": "/nonexistent/netns"}}
	if _, err := m.Setup(ctx, plain, &runtimeapi.PodSandboxConfig{PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80}}}); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, calls); strings.Join(firstWords(got, 3), ",") != "fakenet ADD eth0" {
		t.Errorf("ADD without hostPort ran %q, want fakenet only", got)
	}
	if _, err := m.Setup(ctx, ported, &runtimeapi.PodSandboxConfig{PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}}}); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, calls); strings.Join(firstWords(got, 3), ",") != "fakenet ADD eth0,portmap ADD eth0" {
		t.Errorf("ADD with hostPort ran %q, want fakenet then portmap", got)
	}
	// A new config without portmap must not stop the DEL of the pod that had it.
	write(t, filepath.Dir(file), filepath.Base(file), fakeConflist)
	m.reload()
	if err := m.Teardown(ctx, ported); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, calls); strings.Join(firstWords(got, 3), ",") != "portmap DEL eth0,fakenet DEL eth0" {
		t.Errorf("DEL of the pod with hostPort ran %q, want portmap then fakenet", got)
	}
	if err := m.Teardown(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, calls); strings.Join(firstWords(got, 3), ",") != "fakenet DEL eth0" {
		t.Errorf("DEL of the pod without hostPort ran %q, want fakenet only", got)
	}
	// No cached result: the current list, whole.
	if err := m.Teardown(ctx, &sandbox.Sandbox{ID: "unknown"}); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, calls); strings.Join(firstWords(got, 3), ",") != "fakeport DEL eth0,fakenet DEL eth0" {
		t.Errorf("uncached DEL ran %q, want the current list", got)
	}
}

// firstWords keeps the first n words of each call line.
func firstWords(lines []string, n int) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		f := strings.Fields(l)
		out[i] = strings.Join(f[:min(n, len(f))], " ")
	}
	return out
}
