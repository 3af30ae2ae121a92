package network

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// fakeBinDir holds empty files named like the plugins: selection only
// checks that the binaries exist.
func fakeBinDir(t *testing.T, plugins ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range plugins {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var testBuiltin = &Builtin{Name: "berth", Bridge: "berth0", Subnet: "10.88.0.0/16", DefaultRoute: true, IPMasq: true, DataDir: "/run/berth/cni/networks"}

func TestBuiltinConfList(t *testing.T) {
	data, err := testBuiltin.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		t.Fatalf("built-in network does not parse: %v\n%s", err, data)
	}
	if list.Name != "berth" || list.CNIVersion != cniVersion {
		t.Errorf("name %q version %q", list.Name, list.CNIVersion)
	}
	if got := pluginTypes(list); strings.Join(got, ",") != "bridge,portmap" {
		t.Errorf("plugins = %v, want bridge, portmap", got)
	}
	var bridge struct {
		Bridge    string `json:"bridge"`
		IsGateway bool   `json:"isGateway"`
		IPMasq    bool   `json:"ipMasq"`
		IPAM      struct {
			Type    string                `json:"type"`
			Ranges  [][]map[string]string `json:"ranges"`
			Routes  []map[string]string   `json:"routes"`
			DataDir string                `json:"dataDir"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &bridge); err != nil {
		t.Fatal(err)
	}
	if bridge.Bridge != "berth0" || !bridge.IsGateway || !bridge.IPMasq || bridge.IPAM.Type != "host-local" ||
		bridge.IPAM.Ranges[0][0]["subnet"] != "10.88.0.0/16" || bridge.IPAM.DataDir != "/run/berth/cni/networks" {
		t.Errorf("bridge plugin = %+v", bridge)
	}
	if len(bridge.IPAM.Routes) != 1 || bridge.IPAM.Routes[0]["dst"] != "0.0.0.0/0" {
		t.Errorf("routes = %v, want the default route", bridge.IPAM.Routes)
	}
	var portmap struct {
		Capabilities map[string]bool `json:"capabilities"`
		SNAT         bool            `json:"snat"`
	}
	if err := json.Unmarshal(list.Plugins[1].Bytes, &portmap); err != nil {
		t.Fatal(err)
	}
	if !portmap.Capabilities["portMappings"] || !portmap.SNAT {
		t.Errorf("portmap = %+v, want portMappings capability and snat", portmap)
	}
}

func TestBuiltinConfListIsolated(t *testing.T) {
	b := *testBuiltin
	b.DefaultRoute, b.IPMasq = false, false
	data, err := b.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if strings.Contains(s, `"routes"`) || strings.Contains(s, `"ipMasq": true`) {
		t.Errorf("an isolated network has a route or masquerade:\n%s", s)
	}
	b.Subnet = "fd00:88::/64"
	b.DefaultRoute = true
	data, err = b.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"dst": "::/0"`) {
		t.Errorf("IPv6 subnet without an IPv6 default route:\n%s", data)
	}
	b.Subnet = "nope"
	if _, err := b.ConfList(); err == nil {
		t.Error("a bad subnet gave no error")
	}
}

func TestSelectConf(t *testing.T) {
	bin := fakeBinDir(t, "bridge", "host-local", "portmap", "loopback", "ptp")
	const ptpList = `{"cniVersion": "1.0.0", "name": "%s", "plugins": [{"type": "ptp", "ipam": {"type": "host-local"}}]}`

	t.Run("empty dir uses the built-in network", func(t *testing.T) {
		n := selectConf(t.TempDir(), []string{bin}, testBuiltin)
		if n.err != nil || n.source != builtinSource || n.list.Name != "berth" {
			t.Fatalf("got %+v", n)
		}
	})
	t.Run("missing dir uses the built-in network", func(t *testing.T) {
		n := selectConf(filepath.Join(t.TempDir(), "none"), []string{bin}, testBuiltin)
		if n.err != nil || n.source != builtinSource {
			t.Fatalf("got %+v", n)
		}
	})
	t.Run("no built-in network: not ready", func(t *testing.T) {
		dir := t.TempDir()
		n := selectConf(dir, []string{bin}, nil)
		if n.err == nil || !strings.Contains(n.err.Error(), "no CNI network config in "+dir) {
			t.Fatalf("err = %v", n.err)
		}
	})
	t.Run("first file by name wins", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "20-b.conflist", strings.Replace(ptpList, "%s", "b", 1))
		write(t, dir, "10-a.conflist", strings.Replace(ptpList, "%s", "a", 1))
		write(t, dir, "05-notes.txt", "not a config")
		write(t, dir, ".00-editing.conflist", "{")
		n := selectConf(dir, []string{bin}, testBuiltin)
		if n.err != nil || n.list.Name != "a" || n.source != filepath.Join(dir, "10-a.conflist") {
			t.Fatalf("got source %q err %v", n.source, n.err)
		}
	})
	t.Run("single plugin .conf becomes a list", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "10-one.conf", `{"cniVersion": "0.4.0", "name": "one", "type": "bridge", "bridge": "x0", "ipam": {"type": "host-local"}}`)
		n := selectConf(dir, []string{bin}, testBuiltin)
		if n.err != nil || n.list.Name != "one" || n.list.CNIVersion != "0.4.0" || len(n.list.Plugins) != 1 || n.list.Plugins[0].Network.Type != "bridge" {
			t.Fatalf("got %+v err %v", n.list, n.err)
		}
	})
	t.Run("bad JSON names the file", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "10-broken.conflist", `{"name": "x", "plugins": [`)
		write(t, dir, "20-good.conflist", strings.Replace(ptpList, "%s", "good", 1))
		n := selectConf(dir, []string{bin}, testBuiltin)
		if n.err == nil || !strings.Contains(n.err.Error(), filepath.Join(dir, "10-broken.conflist")) {
			t.Fatalf("err = %v, want one naming the broken file", n.err)
		}
		if n.list != nil {
			t.Error("a broken config still has a network")
		}
	})
	t.Run("missing plugin names the file and plugin", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "10-x.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "ptp"}, {"type": "no-such-plugin"}]}`)
		n := selectConf(dir, []string{bin}, testBuiltin)
		if n.err == nil {
			t.Fatal("no error for a missing plugin")
		}
		for _, want := range []string{filepath.Join(dir, "10-x.conflist"), `plugin "no-such-plugin" not found`, bin} {
			if !strings.Contains(n.err.Error(), want) {
				t.Errorf("err = %v, want it to contain %q", n.err, want)
			}
		}
	})
	t.Run("built-in network needs its plugins", func(t *testing.T) {
		n := selectConf(t.TempDir(), []string{fakeBinDir(t, "loopback")}, testBuiltin)
		if n.err == nil || !strings.Contains(n.err.Error(), `plugin "bridge" not found`) || !strings.Contains(n.err.Error(), builtinSource) {
			t.Fatalf("err = %v", n.err)
		}
	})
}

func TestManagerReloadsOnInstall(t *testing.T) {
	bin := fakeBinDir(t, "bridge", "host-local", "portmap", "loopback", "ptp")
	dir := filepath.Join(t.TempDir(), "net.d") // created by New
	m, err := New(Config{ConfDir: dir, BinDirs: []string{bin}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Status() == nil {
		t.Fatal("ready without any network")
	}
	write(t, dir, "10-late.conflist", `{"cniVersion": "1.0.0", "name": "late", "plugins": [{"type": "ptp"}]}`)
	waitFor(t, func() bool { return m.Status() == nil })
	if got := m.Network(); !strings.HasPrefix(got, "late (") {
		t.Errorf("Network() = %q", got)
	}
	if err := os.Remove(filepath.Join(dir, "10-late.conflist")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return m.Status() != nil })
}

func TestWithoutPortmap(t *testing.T) {
	for _, tc := range []struct {
		name, list string
		want       string // plugin types left; "" for no variant
	}{
		{"chained", `{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}, {"type": "bandwidth"}]}`, "bridge,bandwidth"},
		{"none", `{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}`, ""},
		{"first", `{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "portmap"}]}`, ""},
		{"static runtimeConfig", `{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "bridge"}, {"type": "portmap", "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 1}]}}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := libcni.NetworkConfFromBytes([]byte(tc.list))
			if err != nil {
				t.Fatal(err)
			}
			got, err := withoutPlugins(list, portmapType)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if got != nil {
					t.Errorf("got a variant %s, want none", got.Bytes)
				}
				return
			}
			if got == nil || strings.Join(pluginTypes(got), ",") != tc.want {
				t.Fatalf("variant %v, want %s", got, tc.want)
			}
			again, err := libcni.NetworkConfFromBytes(got.Bytes)
			if err != nil || strings.Join(pluginTypes(again), ",") != tc.want || again.Name != "n" || again.CNIVersion != "1.0.0" {
				t.Errorf("variant's bytes (what libcni caches) do not describe it: %s", got.Bytes)
			}
		})
	}
	n := selectConf(t.TempDir(), []string{fakeBinDir(t, "bridge", "host-local", "portmap")}, testBuiltin)
	if n.err != nil || n.noPorts == nil || strings.Join(pluginTypes(n.noPorts), ",") != "bridge" {
		t.Errorf("built-in network: err %v, no-ports variant %v", n.err, n.noPorts)
	}
}
