package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bundle", "/b", "--pid-file", "/p", "id"}, "/p"},
		{[]string{"--pid-file=/q", "id"}, "/q"},
		{[]string{"--bundle", "/b", "id"}, ""},
		{[]string{"--pid-file"}, ""},
	} {
		if got := flagValue(tc.args, "--pid-file"); got != tc.want {
			t.Errorf("flagValue(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestWriteRunscShim(t *testing.T) {
	dir := t.TempDir()
	rt := &cli{name: "runsc", path: "/usr/local/bin/run'sc", root: "/r", args: []string{"--x"}}
	shim, err := writeRunscShim(dir, rt)
	if err != nil {
		t.Fatal(err)
	}
	if shim != filepath.Join(dir, "runtimes", "runsc.conmon-shim") {
		t.Fatalf("shim script at %s", shim)
	}
	b, err := os.ReadFile(shim)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), ` runsc-shim '/usr/local/bin/run'\''sc' "$@"`) {
		t.Errorf("script does not exec the shim with the quoted runsc path:\n%s", b)
	}
	if fi, _ := os.Stat(shim); fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("script mode %v is not executable", fi.Mode())
	}
}
