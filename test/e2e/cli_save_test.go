package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// TestCLISave saves the busybox image from a real berthd in both archive
// formats, loads each archive into a second berthd that has no image, and
// runs a container from it there: the round trip keeps the image id and a
// working rootfs. -o and stdout give the same bytes.
func TestCLISave(t *testing.T) {
	d := framework.Shared(t)
	d2 := framework.StartDaemon(t, framework.Options{NoImage: true})
	dir := t.TempDir()
	for _, format := range []string{"docker", "oci"} {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(dir, format+".tar")
			if out, stderr, code := berthCLI(t, d, "save", "--format", format, "-o", file, testimage.BusyboxRef); code != 0 || out != "" {
				t.Fatalf("save -o: status %d, out %q, stderr %q", code, out, stderr)
			}
			saved, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := berthCLI(t, d, "save", "--format", format, d.BusyboxID[:19])
			if code != 0 || !bytes.Equal([]byte(stdout), saved) {
				t.Errorf("save to stdout: status %d, %d bytes (file: %d), stderr %q", code, len(stdout), len(saved), stderr)
			}
			t.Logf("%s archive: %d bytes", format, len(saved))

			out, stderr, code := berthCLI(t, d2, "load", "-i", file)
			if code != 0 || out != "Imported "+d.BusyboxID+"\n" {
				t.Fatalf("load into a second berthd: status %d, out %q, stderr %q", code, out, stderr)
			}
			out, stderr, code = berthCLI(t, d2, "run", "--rm", "--pull", "never", testimage.BusyboxRef, "sh", "-c", "echo saved as $0", format)
			if code != 0 || out != "saved as "+format+"\n" {
				t.Errorf("run from the loaded image: status %d, out %q, stderr %q", code, out, stderr)
			}
			if _, stderr, code := berthCLI(t, d2, "rmi", testimage.BusyboxRef); code != 0 {
				t.Errorf("rmi: status %d: %s", code, stderr)
			}
		})
	}

	t.Run("unknown image", func(t *testing.T) {
		file := filepath.Join(dir, "none.tar")
		_, stderr, code := berthCLI(t, d, "save", "-o", file, "berth.test/absent:1")
		if code != 125 || stderr != "berth: no image matches \"berth.test/absent:1\"\n" {
			t.Errorf("save of an absent image: status %d, stderr %q", code, stderr)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("save of an absent image left %s: %v", file, err)
		}
	})
}
