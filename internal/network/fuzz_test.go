package network

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCNIConfig: any file in the CNI config dir either selects a network
// whose every plugin is a binary inside bin_dirs, or gives an error;
// plugin types never name paths.
func FuzzCNIConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.1.0.0/16"}},{"type":"portmap","capabilities":{"portMappings":true}}]}`), true)
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"single","type":"bridge"}`), false)
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"listInConf","plugins":[{"type":"bridge"}]}`), false)
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"evil","plugins":[{"type":"../../../bin/sh"}]}`), true)
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"abs","type":"/bin/sh"}`), false)
	f.Add([]byte(`{"name":"","plugins":[]}`), true)
	f.Add([]byte(`[1,2]`), false)
	bin := f.TempDir()
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if err := os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	confDir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, list bool) {
		name := "10-net.conf"
		if list {
			name = "10-net.conflist"
		}
		ents, _ := os.ReadDir(confDir)
		for _, e := range ents {
			os.Remove(filepath.Join(confDir, e.Name()))
		}
		if err := os.WriteFile(filepath.Join(confDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		n := selectConf(confDir, []string{bin}, nil)
		if n.err != nil {
			if n.list != nil {
				t.Fatal("an error and a network")
			}
			return
		}
		if n.list == nil || n.list.Name == "" || len(n.list.Plugins) == 0 && n.list.Plugins != nil {
			t.Fatalf("selected network %+v", n.list)
		}
		for _, p := range n.list.Plugins {
			typ := p.Network.Type
			if typ == "" || strings.ContainsAny(typ, "/\x00") || typ == "." || typ == ".." {
				t.Fatalf("plugin type %q accepted", typ)
			}
			if _, err := os.Stat(filepath.Join(bin, typ)); err != nil {
				t.Fatalf("plugin %q is not in bin_dirs: %v", typ, err)
			}
		}
	})
}
