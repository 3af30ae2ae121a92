package framework

import (
	"path/filepath"
	"testing"
)

// NRIPluginBinary builds test/nriplugin (the e2e suite's NRI plugin) into
// t's temp dir under name, e.g. "10-berthtest" to pre-register it in a
// plugin dir, and returns its path. Go's build cache makes repeat builds
// quick.
func NRIPluginBinary(t testing.TB, name string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if out, err := goBuild(root, bin, "./test/nriplugin"); err != nil {
		t.Fatalf("go build ./test/nriplugin: %v\n%s", err, out)
	}
	return bin
}
