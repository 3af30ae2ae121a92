package runtime

import (
	"errors"
	"os"
	"os/exec"
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

// TestRunscWaiterScript runs the waiter with a fake runsc: it polls while
// the container is created, then exits with the status `runsc wait`
// reports; a container gone before it ran gives 137.
func TestRunscWaiterScript(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	fake := fakeBinary(t, dir, "runsc", `
for a; do last=$a; done
case " $* " in
*" state "*)
	[ -e `+dir+`/gone ] && exit 1
	n=$(cat `+count+` 2>/dev/null || echo 0); echo $((n+1)) > `+count+`
	if [ "$n" -lt 2 ]; then printf '{\n  "id": "c",\n  "status": "created",\n  "created": "x"\n}\n'
	else printf '{\n  "status": "running"\n}\n'; fi ;;
*" wait "*) [ -e `+dir+`/gone ] && exit 1; echo '{"id":"c","exitStatus":143}' ;;
esac
`)
	run := func() int {
		cmd := exec.Command("/bin/sh", "-c", runscWaiterScript, "runsc-waiter", fake, "c", "--root", "/r", "--log-format", "json")
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := run(); code != 143 {
		t.Errorf("waiter exit %d, want 143 (the container's)", code)
	}
	if b, _ := os.ReadFile(count); strings.TrimSpace(string(b)) != "3" {
		t.Errorf("state polled %s times, want 3 (two while created)", b)
	}
	if err := os.WriteFile(filepath.Join(dir, "gone"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(); code != 137 {
		t.Errorf("waiter of a removed container exit %d, want 137", code)
	}
}
