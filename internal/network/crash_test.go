package network

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/berth-project/berth/internal/sandbox"
)

// TestTeardownAfterLoopbackOnly is an older berthd (which ran the loopback
// plugin) killed during the pod network's ADD: only the loopback result is
// cached, but the pod network's plugins may already hold a lease, so
// Teardown must DEL the pod network; the loopback DEL is not run (it only
// set "lo" down) and its cached result goes.
func TestTeardownAfterLoopbackOnly(t *testing.T) {
	bin, calls := fakeCNI(t)
	m, _ := newTestManager(t, bin, fakeConflist)
	ctx := context.Background()
	loList, err := libcni.NetworkConfFromBytes([]byte(`{"cniVersion": "1.0.0", "name": "` + loopbackNetwork + `", "plugins": [{"type": "loopback"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	lo := &libcni.RuntimeConf{ContainerID: "half", NetNS: "/nonexistent/netns", IfName: "lo"}
	if _, err := m.cni.AddNetworkList(ctx, loList, lo); err != nil {
		t.Fatal(err)
	}
	readCalls(t, calls)

	half := &sandbox.Sandbox{ID: "half", Namespaces: map[string]string{"net": "/nonexistent/netns"}}
	if err := m.Teardown(ctx, half); err != nil {
		t.Fatal(err)
	}
	if left, _ := m.cni.GetCachedAttachments("half"); len(left) != 0 {
		t.Errorf("cached results left after Teardown: %d", len(left))
	}
	got := readCalls(t, calls)
	want := []string{"fakeport DEL eth0", "fakenet DEL eth0"}
	if len(got) != len(want) {
		t.Fatalf("calls %q, want %v", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("call %d = %q, want %q", i, got[i], w)
		}
	}
}

// TestTeardownDropsTruncatedCache: berthd killed while libcni wrote an ADD
// result leaves a truncated cache file that libcni skips; Teardown removes
// it, or it stays in the state dir for ever.
func TestTeardownDropsTruncatedCache(t *testing.T) {
	bin, _ := fakeCNI(t)
	m, _ := newTestManager(t, bin, fakeConflist)
	results := filepath.Join(m.cfg.CacheDir, "results")
	if err := os.MkdirAll(results, 0o700); err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(results, "cni-loopback-half2-lo")
	if err := os.WriteFile(trunc, []byte(`{"kind":"cniCacheV1","contai`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(results, "cni-loopback-otherpod-lo")
	if err := os.WriteFile(other, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(context.Background(), &sandbox.Sandbox{ID: "half2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(trunc); !os.IsNotExist(err) {
		t.Errorf("truncated cache file of the torn down pod is left: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another pod's cache file went: %v", err)
	}
}
