package network

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The in-process path reads the IPAM section host-local would get from the
// built-in conflist: same ranges, gateway, routes, store name and dir.
func TestBridgeNetIPAMMatchesPlugins(t *testing.T) {
	for _, b := range []Builtin{
		{Name: "berth", Bridge: "berth0", Subnet: "10.88.0.0/16", DefaultRoute: true, DataDir: "/s/networks"},
		{Name: "berth", Bridge: "berth0", Subnet: "10.200.3.0/24", DataDir: "/s/networks"},
		{Name: "berth", Bridge: "berth0", Subnet: "fd00:88::/64", DefaultRoute: true, DataDir: "/s/networks"},
	} {
		bn, err := newBridgeNet(b, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ConfList()
		if err != nil {
			t.Fatal(err)
		}
		list, err := libcni.NetworkConfFromBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		// What libcni hands the bridge plugin (and it host-local): the
		// plugin's config with the list's name and version added.
		var bridge map[string]any
		if err := json.Unmarshal(list.Plugins[0].Bytes, &bridge); err != nil {
			t.Fatal(err)
		}
		bridge["name"], bridge["cniVersion"] = list.Name, list.CNIVersion
		conf, _ := json.Marshal(bridge)
		want, _, err := allocator.LoadIPAMConfig(conf, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(bn.ipam, want) {
			t.Errorf("%s: in-process IPAM %+v, plugin's %+v", b.Subnet, bn.ipam, want)
		}
		if bn.bridge != b.Bridge {
			t.Errorf("bridge %q", bn.bridge)
		}
	}
}

func TestInprocRecord(t *testing.T) {
	dir := t.TempDir()
	if r, err := readRecord(dir, "p1"); r != nil || err != nil {
		t.Fatalf("no record: %v, %v", r, err)
	}
	rec := &inprocRecord{Kind: inprocRecordKind, ContainerID: "p1", Network: "berth", DataDir: "/d", Bridge: "b0", IfName: "eth0"}
	if err := writeRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	rec.Result = json.RawMessage(`{"cniVersion":"1.0.0"}`)
	if err := writeRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(dir, "p1")
	if err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, rec)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
	// A record that is not one, or another pod's, is reported, not used.
	for name, content := range map[string]string{"p2": "{trunc", "p3": `{"kind":"berthInProcessV1","containerId":"p1","networkName":"berth","ifName":"eth0"}`} {
		if err := os.WriteFile(recordPath(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readRecord(dir, name); err == nil || !strings.Contains(err.Error(), recordPath(dir, name)) {
			t.Errorf("record %s: %v, want an error naming the file", name, err)
		}
	}
}

func TestGateways(t *testing.T) {
	_, n4, _ := net.ParseCIDR("10.88.0.0/16")
	_, n6, _ := net.ParseCIDR("fd00::/64")
	res := &current.Result{IPs: []*current.IPConfig{
		{Address: net.IPNet{IP: net.ParseIP("10.88.0.7").To4(), Mask: n4.Mask}},
		{Address: net.IPNet{IP: net.ParseIP("fd00::9"), Mask: n6.Mask}, Gateway: net.ParseIP("fd00::fe")},
	}}
	gws := gateways(res)
	want := []string{"10.88.0.1/16", "fd00::fe/64"}
	if len(gws) != 2 || gws[0].String() != want[0] || gws[1].String() != want[1] {
		t.Errorf("gateways %v, want %v", gws, want)
	}
	for _, ipc := range res.IPs {
		if ipc.Interface == nil || *ipc.Interface != 2 || ipc.Gateway == nil {
			t.Errorf("IP %v: interface %v gateway %v; want the pod's (2) and a gateway", ipc.Address, ipc.Interface, ipc.Gateway)
		}
	}
}

// Leases come from host-local's store: one taken by the plugin (another
// process) is skipped, and DEL without a namespace releases the pod's and
// drops its record, repeatably.
func TestInprocessLeases(t *testing.T) {
	data := t.TempDir()
	b := Builtin{Name: "berth", Bridge: "b0", Subnet: "10.9.0.0/29", DataDir: data}
	bn, err := newBridgeNet(b, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := disk.New("berth", data)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := store.Reserve("plugin-pod", "eth0", net.ParseIP("10.9.0.2").To4(), "0"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	store.Close()
	seen := map[string]bool{"10.9.0.2": true}
	for _, id := range []string{"a", "b"} {
		ips, err := bn.allocate(id)
		if err != nil {
			t.Fatal(err)
		}
		ip := ips[0].Address.IP.String()
		if seen[ip] || ips[0].Gateway.String() != "10.9.0.1" {
			t.Errorf("pod %s got %s (gateway %s)", id, ip, ips[0].Gateway)
		}
		seen[ip] = true
	}
	// An ADD for an ID holding a lease is refused, as by host-local.
	if _, err := bn.allocate("a"); err == nil {
		t.Error("second allocation for pod a succeeded")
	}
	rec := &inprocRecord{Kind: inprocRecordKind, ContainerID: "a", Network: "berth", DataDir: data, Bridge: "b0", IfName: "eth0"}
	if err := writeRecord(bn.recDir, rec); err != nil {
		t.Fatal(err)
	}
	// As a crash in the record's rewrite leaves it.
	if err := os.WriteFile(recordPath(bn.recDir, "a")+".tmp", []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := delInProcess(bn.recDir, rec, ""); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := os.ReadDir(bn.recDir); len(left) > 0 {
		t.Errorf("left after DEL: %v", left)
	}
	left, _ := os.ReadDir(filepath.Join(data, "berth"))
	var leases []string
	for _, e := range left {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			leases = append(leases, e.Name())
		}
	}
	if len(leases) != 2 {
		t.Errorf("leases after pod a's DEL: %v, want the plugin pod's and pod b's", leases)
	}
}

// TestSweepEmptyLeases: a lease file a crash left empty (made, no pod id
// written yet) is freed at start; leases with an id, the lock and the
// last-reserved marker stay.
func TestSweepEmptyLeases(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "berth")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"10.88.0.2":          "pod-a\r\neth0",
		"10.88.0.3":          "",
		"last_reserved_ip.0": "10.88.0.3",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	freed, err := sweepEmptyLeases("berth", dataDir)
	if err != nil || !slices.Equal(freed, []string{"10.88.0.3"}) {
		t.Fatalf("freed %v, %v; want [10.88.0.3]", freed, err)
	}
	for _, n := range []string{"10.88.0.2", "last_reserved_ip.0", "lock"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "10.88.0.3")); !os.IsNotExist(err) {
		t.Errorf("empty lease left: %v", err)
	}
}

// Preparable: only pods whose in-process ADD any pod would get, on the
// built-in network with prepare_ahead on, and not a config Setup refuses.
func TestPreparable(t *testing.T) {
	useFakeTables(t, newFakeTables()) // the built-in network's masquerade
	on := *testBuiltin
	on.InProcess, on.PrepareAhead = true, true
	m := newBuiltinManager(t, on)
	ports := func(host int32) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: host}}}
	}
	for _, tc := range []struct {
		name string
		cfg  *runtimeapi.PodSandboxConfig
		want bool
	}{
		{"any pod", nil, true},
		{"a container port only", ports(0), true},
		{"DNS config", &runtimeapi.PodSandboxConfig{DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}}}, true},
		{"a host port", ports(8080), false},
		{"a bad bandwidth annotation", &runtimeapi.PodSandboxConfig{Annotations: map[string]string{IngressBandwidthAnnotation: "fast"}}, false},
	} {
		if got := m.Preparable(tc.cfg); got != tc.want {
			t.Errorf("%s: Preparable = %v, want %v", tc.name, got, tc.want)
		}
	}
	for name, b := range map[string]Builtin{
		"prepare_ahead off": func() Builtin { b := on; b.PrepareAhead = false; return b }(),
		"plugins":           func() Builtin { b := on; b.InProcess = false; return b }(),
	} {
		if newBuiltinManager(t, b).Preparable(nil) {
			t.Errorf("%s: preparable", name)
		}
	}
}
