package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// berthCLI runs the berth binary against d and returns its stdout, stderr
// and exit status.
func berthCLI(t *testing.T, d *framework.Daemon, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(framework.BerthBinary(t), append([]string{"--socket", d.Socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// TestCLIErrors checks the words and exit statuses of berth's errors
// against a real berthd: a registry that is down is berthd's answer, not a
// dead berthd; a stopped berthd is; a missing command exits 127.
func TestCLIErrors(t *testing.T) {
	d := framework.Shared(t)

	t.Run("registry down", func(t *testing.T) {
		reg := framework.StartRegistry(t, framework.RegistryOptions{})
		ref := reg.Ref("e2e/gone:v1")
		reg.Stop()
		_, stderr, code := berthCLI(t, d, "pull", ref)
		t.Logf("registry down: status %d: %s", code, stderr)
		if code != 125 || !strings.HasPrefix(stderr, "berth: pulling "+ref+": ") || !strings.Contains(stderr, reg.Host+" is unreachable") ||
			strings.Contains(stderr, "cannot reach berthd") || strings.Contains(stderr, "rpc error") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("pull from a stopped registry: status %d, stderr %q", code, stderr)
		}
	})

	t.Run("berthd down", func(t *testing.T) {
		d2 := framework.StartDaemon(t, framework.Options{NoImage: true})
		d2.Stop(t)
		_, stderr, code := berthCLI(t, d2, "pull", "busybox")
		t.Logf("berthd down: status %d: %s", code, stderr)
		if code != 125 || !strings.HasPrefix(stderr, "berth: pulling busybox: cannot reach berthd at unix://"+d2.Socket+" (from --socket): ") ||
			!(strings.Contains(stderr, "no socket at") || strings.Contains(stderr, "nothing listens on")) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("pull with berthd stopped: status %d, stderr %q", code, stderr)
		}
	})

	t.Run("exec of a missing command", func(t *testing.T) {
		pod := d.PodConfig(t, "cli-err")
		podID := d.RunPod(t, pod)
		id := d.RunContainer(t, podID, pod, framework.Sh("c", "sleep 1000"))
		_, stderr, code := berthCLI(t, d, "exec", id, "/no/such/cmd")
		if code != 127 {
			t.Errorf("exec of a missing command: status %d, stderr %q", code, stderr)
		}
		_, stderr, code = berthCLI(t, d, "exec", id, "sh", "-c", "exit 3")
		if code != 3 {
			t.Errorf("exec exit 3: status %d, stderr %q", code, stderr)
		}
		_, stderr, code = berthCLI(t, d, "exec", "no-such-container", "true")
		if code != 125 || stderr != "berth: no container matches \"no-such-container\"\n" {
			t.Errorf("exec in a missing container: status %d, stderr %q", code, stderr)
		}
	})
}

// startBerth starts the berth binary against d in the background; the test
// reads its stdout through the returned reader and it is killed (by its
// PID) when t ends.
func startBerth(t *testing.T, d *framework.Daemon, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(framework.BerthBinary(t), append([]string{"--socket", d.Socket}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out), &stderr
}

// readLine reads one line from r within timeout.
func readLine(t *testing.T, r *bufio.Reader, timeout time.Duration) string {
	t.Helper()
	c := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		c <- s
	}()
	select {
	case s := <-c:
		return s
	case <-time.After(timeout):
		t.Fatalf("no line within %s", timeout)
		return ""
	}
}

// TestCLIVerbs runs the newer verbs against a real berthd: attach and
// port-forward through real streams, events seeing a container exit, and
// the read-only verbs.
func TestCLIVerbs(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "cli-verbs")
	podID := d.RunPod(t, pod)

	t.Run("attach", func(t *testing.T) {
		cfg := framework.Sh("att", "read x; echo got $x; echo err >&2; exit 4")
		// stdin_once: the end of our input is the container's, and the
		// session lasts until its output ends (without it, the end of our
		// input detaches, as with kubectl attach).
		cfg.Stdin, cfg.StdinOnce = true, true
		id := d.RunContainer(t, podID, pod, cfg)
		cmd := exec.Command(framework.BerthBinary(t), "--socket", d.Socket, "attach", "-i", id)
		cmd.Stdin = strings.NewReader("hi\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 || stdout.String() != "got hi\n" || stderr.String() != "err\n" {
			t.Errorf("berth attach -i = %v; stdout %q stderr %q", err, stdout.String(), stderr.String())
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		d.RunContainer(t, podID, pod, framework.Sh("web", "mkdir -p /www && echo hello-pf > /www/index.html && exec httpd -f -p 8080 -h /www"))
		_, out, stderr := startBerth(t, d, "port-forward", "cli-verbs", ":8080")
		line := readLine(t, out, 10*time.Second)
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "Forwarding from ")
		addr, _, _ = strings.Cut(addr, " -> 8080")
		if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("port-forward said %q (stderr %q)", line, stderr.String())
		}
		var body string
		err := framework.WaitFor(15*time.Second, func() bool {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return body == "hello-pf\n"
		})
		if err != nil {
			t.Errorf("GET through port-forward: %q (stderr %q)", body, stderr.String())
		}
		// A second connection goes over the same streaming session.
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("second GET: %v (stderr %q)", err, stderr.String())
		}
		resp.Body.Close()
	})

	t.Run("events", func(t *testing.T) {
		_, out, stderr := startBerth(t, d, "events", "--pod", "cli-verbs", "--count", "3")
		// The stream is open once berthd has the subscription; give the
		// client a moment, then make events.
		time.Sleep(time.Second)
		id := d.RunContainer(t, podID, pod, framework.Sh("ev", "exit 3"))
		var lines []string
		for range 3 {
			lines = append(lines, readLine(t, out, 15*time.Second))
		}
		words := []string{"created", "started", "stopped"}
		for i, l := range lines {
			if !strings.Contains(l, " "+words[i]+" ") || !strings.Contains(l, id[:13]) || !strings.Contains(l, "pod="+framework.Namespace+"/cli-verbs") {
				t.Errorf("event %d: %q, want %s of %s (stderr %q)", i, l, words[i], id[:13], stderr.String())
			}
		}
		if !strings.Contains(lines[2], "exit=3 reason=Error") {
			t.Errorf("stop event %q lacks the exit", lines[2])
		}
	})

	t.Run("read-only verbs", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"statsp", "cli-verbs", "-s", "0"}, "cli-verbs"},
			{[]string{"imagefsinfo"}, d.Root},
			{[]string{"runtime-config"}, "Cgroup Driver: "},
			{[]string{"info", "-o", "table"}, "RuntimeReady"},
			{[]string{"info", "config"}, `"Root": "` + d.Root + `"`},
		} {
			out, stderr, code := berthCLI(t, d, tt.args...)
			if code != 0 || !strings.Contains(out, tt.want) {
				t.Errorf("berth %v: status %d, stderr %q, out\n%s\nwant it to contain %q", tt.args, code, stderr, out, tt.want)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		id := d.RunContainer(t, podID, pod, framework.Sh("upd", "sleep 1000"))
		if _, stderr, code := berthCLI(t, d, "update", "--memory", "64m", "--cpus", "0.5", id); code != 0 {
			t.Fatalf("update: status %d: %s", code, stderr)
		}
		res := d.ContainerStatus(t, id).GetResources().GetLinux()
		if res.GetMemoryLimitInBytes() != 64<<20 || res.GetCpuQuota() != 50000 || res.GetCpuShares() != 2 {
			t.Errorf("after update: %v", res)
		}
	})

	t.Run("load", func(t *testing.T) {
		out, stderr, code := berthCLI(t, d, "load", "-i", testimage.Busybox(t))
		if code != 0 || out != "Imported "+d.BusyboxID+"\n" {
			t.Errorf("load: status %d, out %q, stderr %q", code, out, stderr)
		}
	})
}

// TestCLIRunFlags runs docker-style `berth run` flags against a real
// berthd: env files, bind mounts, limits, stdin, published ports, the
// host network, and the statuses of commands that cannot run.
func TestCLIRunFlags(t *testing.T) {
	d := framework.Shared(t)
	img := testimage.BusyboxRef
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("A=file\nB=file\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("env, volume, workdir, user, memory", func(t *testing.T) {
		out, stderr, code := berthCLI(t, d, "run", "--rm", "--name", "cli-run-flags", "--env-file", envFile, "-e", "B=flag",
			"-v", dir+":/data:ro", "-w", "/data", "-u", "1234:5678", "--memory", "64m", img,
			"sh", "-c", "echo $A $B; cat f; pwd; id -u; id -g; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /data/x 2>/dev/null || echo read-only")
		want := "file flag\nfrom-host\n/data\n1234\n5678\n67108864\nread-only\n"
		if code != 0 || out != want {
			t.Errorf("run: status %d, stderr %q, out\n%s\nwant\n%s", code, stderr, out, want)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		cmd := exec.Command(framework.BerthBinary(t), "--socket", d.Socket, "run", "--rm", "-i", img, "sh", "-c", "read x; echo got $x; exit 6")
		cmd.Stdin = strings.NewReader("hi\n")
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 6 || string(out) != "got hi\n" {
			t.Errorf("run -i: %v, out %q", err, out)
		}
	})

	t.Run("publish", func(t *testing.T) {
		port := freeTCPPort(t)
		out, stderr, code := berthCLI(t, d, "run", "-d", "--name", "cli-run-web", "-p", fmt.Sprintf("%d:8080", port), img,
			"sh", "-c", "mkdir -p /www && echo hello-p > /www/index.html && exec httpd -f -p 8080 -h /www")
		if code != 0 {
			t.Fatalf("run -d -p: status %d, stderr %q", code, stderr)
		}
		id := strings.TrimSpace(out)
		t.Cleanup(func() {
			berthCLI(t, d, "rmp", "-f", "cli-run-web")
			// A detached run's log dir outlives its pod (only --rm
			// removes it), as a kubelet pod's does until kubelet's GC.
			dirs, _ := filepath.Glob("/var/log/berth/pods/default_cli-run-web_*")
			for _, dir := range dirs {
				os.RemoveAll(dir)
			}
		})
		var body string
		err := framework.WaitFor(15*time.Second, func() bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return body == "hello-p\n"
		})
		if err != nil {
			t.Errorf("GET on the published port: %q", body)
		}
		// The name run gave works for the other verbs.
		if out, stderr, code := berthCLI(t, d, "ps", "-q", "--name", "^cli-run-web$"); code != 0 || strings.TrimSpace(out) != id {
			t.Errorf("ps --name: %d %q %q, want %s", code, out, stderr, id)
		}
	})

	t.Run("host network", func(t *testing.T) {
		host, _ := os.Hostname()
		out, stderr, code := berthCLI(t, d, "run", "--rm", "--network", "host", img, "hostname")
		if code != 0 || strings.TrimSpace(out) != host {
			t.Errorf("run --network host hostname: status %d, out %q, stderr %q, want %q", code, out, stderr, host)
		}
	})

	t.Run("command not found", func(t *testing.T) {
		_, stderr, code := berthCLI(t, d, "run", "--rm", img, "/no/such/cmd")
		if code != 127 {
			t.Errorf("run of a missing command: status %d, stderr %q", code, stderr)
		}
		_, stderr, code = berthCLI(t, d, "run", "--rm", "--pull", "never", "berth.test/absent:1")
		if code != 125 || !strings.Contains(stderr, "--pull never forbids") {
			t.Errorf("run --pull never: status %d, stderr %q", code, stderr)
		}
	})
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// openPTY opens a pseudo-terminal pair: the master for the test, the slave
// for the berth process.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestCLIRunTTY runs `berth run --rm -it` on a pseudo-terminal: a shell
// answers typed input and its exit status is berth's.
func TestCLIRunTTY(t *testing.T) {
	d := framework.Shared(t)
	master, slave := openPTY(t)
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(framework.BerthBinary(t), "--socket", d.Socket, "run", "--rm", "-it", testimage.BusyboxRef, "sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var out syncBuf
	go func() { _, _ = io.Copy(&out, master) }()
	typeUntil(t, master, &out, "echo $((6*7)) $(stty size)\r", "42 30 100")
	if _, err := io.WriteString(master, "exit 5\r"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Errorf("run -it: %v, want status 5; terminal %q", err, out.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("run -it did not end; terminal %q", out.String())
	}
}

// TestCLIPullProgress pulls through a slowed registry: to a pipe berth
// writes a line per layer state and a summary, to a pseudo-terminal live
// bars redrawn in place.
func TestCLIPullProgress(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	proxy := framework.StartRegistryProxy(t, reg.Host)
	reg.Push(t, "e2e/progress:pipe", bigImage(t, empty.Image, 2, 1<<20))
	reg.Push(t, "e2e/progress:tty", bigImage(t, empty.Image, 2, 1<<20))
	proxy.SetRate(1 << 20)

	t.Run("pipe", func(t *testing.T) {
		ref := proxy.Host + "/e2e/progress:pipe"
		out, stderr, code := berthCLI(t, d, "pull", ref)
		if code != 0 || !strings.HasPrefix(out, "Image is up to date for sha256:") {
			t.Fatalf("pull: status %d, out %q, stderr %q", code, out, stderr)
		}
		t.Logf("progress to a pipe:\n%s", stderr)
		if !strings.Contains(stderr, ": downloading ") || !strings.Contains(stderr, "pulled "+ref+": 2 layers, ") || strings.Contains(stderr, "\x1b[") {
			t.Errorf("progress to a pipe:\n%s", stderr)
		}
	})

	t.Run("terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		ref := proxy.Host + "/e2e/progress:tty"
		cmd := exec.Command(framework.BerthBinary(t), "--socket", d.Socket, "pull", ref)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, slave
		var term syncBuf
		go func() { _, _ = io.Copy(&term, master) }()
		if err := cmd.Run(); err != nil {
			t.Fatalf("pull: %v, terminal %q", err, term.String())
		}
		time.Sleep(200 * time.Millisecond) // let the copy drain
		s := term.String()
		t.Logf("progress to a terminal: %q", s)
		if !strings.Contains(s, "\x1b[3A") || !strings.Contains(s, "[=") || !strings.Contains(s, "pulled "+ref+": ") {
			t.Errorf("progress to a terminal: %q", s)
		}
	})
}
