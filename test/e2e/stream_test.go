package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// The two ways a client reaches the streaming server: SPDY (kubelet's
// proxy, crictl) and WebSocket. The library serves v4 over WebSocket.
const (
	viaSPDY      = "spdy"
	viaWebSocket = "websocket"
)

func executor(t *testing.T, rawURL, via string) remotecommand.Executor {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("streaming URL %q: %v", rawURL, err)
	}
	var ex remotecommand.Executor
	if via == viaSPDY {
		ex, err = remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
	} else {
		ex, err = remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, http.MethodGet, u.String(), "v4.channel.k8s.io")
	}
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// execURL asks berthd for an exec URL.
func execURL(t *testing.T, d *framework.Daemon, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := d.Runtime.Exec(framework.Ctx(t), req)
	if err != nil {
		t.Fatalf("Exec(%q): %v", req.Cmd, err)
	}
	return resp.Url
}

// exitCode returns the exit code a stream error carries (0 for nil), failing
// t on any other error.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.Code
	}
	t.Fatalf("stream failed: %v", err)
	return -1
}

// procsNamed lists host pids whose command line has the argument arg.
func procsNamed(arg string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(append([]byte{0}, b...), []byte("\x00"+arg+"\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

func waitNoProcs(t *testing.T, arg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := procsNamed(arg)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes with argument %q still there after %v: %v", arg, timeout, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// marker is a number unique to this run, used as a sleep argument to find
// the process on the host.
func marker() string { return strconv.Itoa(100000 + rand.IntN(800000)) }

// syncBuf collects output written by a stream while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, b *syncBuf, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q; got %q", want, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sizeQueue feeds terminal sizes to the client.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

// runningContainer starts a pod with one long-running container.
func runningContainer(t *testing.T, d *framework.Daemon, name string) (podID, id string) {
	t.Helper()
	pod := d.PodConfig(t, name)
	podID = d.RunPod(t, pod)
	id = d.RunContainer(t, podID, pod, framework.Sh("main", "while true; do sleep 1; done"))
	return podID, id
}

func TestExecSync(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "execsync")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("main", "while true; do sleep 1; done"))
	execSync := func(cmd []string, timeout int64) (*runtimeapi.ExecSyncResponse, error) {
		return d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout},
			grpc.MaxCallRecvMsgSize(64<<20))
	}

	t.Run("output and exit code", func(t *testing.T) {
		resp, err := execSync([]string{"sh", "-c", "echo out; echo err >&2; exit 3"}, 0)
		if err != nil || string(resp.Stdout) != "out\n" || string(resp.Stderr) != "err\n" || resp.ExitCode != 3 {
			t.Fatalf("ExecSync = %v, %v", resp, err)
		}
		// The container's environment and working directory apply.
		resp, err = execSync([]string{"sh", "-c", "echo $KUBERNETES_SERVICE_HOST; pwd"}, 5)
		if err != nil || string(resp.Stdout) != "10.96.0.1\n/\n" {
			t.Fatalf("ExecSync env = %v, %v", resp, err)
		}
	})

	t.Run("missing command", func(t *testing.T) {
		resp, err := execSync([]string{"/no/such/cmd"}, 5)
		if err != nil || resp.ExitCode == 0 || !strings.Contains(string(resp.Stderr), "/no/such/cmd") {
			t.Fatalf("ExecSync = %v, %v; want a non-zero exit with the runtime's message", resp, err)
		}
		t.Logf("missing command: exit %d, stderr %q", resp.ExitCode, resp.Stderr)
	})

	t.Run("timeout kills and reaps", func(t *testing.T) {
		m := marker()
		start := time.Now()
		_, err := execSync([]string{"sh", "-c", "sleep " + m + " & exec sleep " + m}, 1)
		wantCode(t, "ExecSync past its timeout", err, codes.DeadlineExceeded)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("timeout of 1s answered after %v", took)
		}
		// Right after the answer: the exec'd process is gone, not just
		// signalled.
		if left := procsNamed(m); len(left) > 0 {
			t.Errorf("exec'd process still there right after the timeout: %v", left)
		}
		// Its background child (killed with its session) is reaped by
		// the container's init.
		waitNoProcs(t, m, 3*time.Second)
	})

	t.Run("output capped", func(t *testing.T) {
		resp, err := execSync([]string{"sh", "-c", "head -c 17000000 /dev/zero; echo done >&2"}, 30)
		if err != nil {
			t.Fatalf("ExecSync: %v", err)
		}
		// stdout and stderr share one budget that keeps the response
		// within kubelet's 16 MiB (less 64 bytes for its framing): stdout
		// spent it all, so the later stderr line is dropped.
		if len(resp.Stdout) != 16<<20-64 || len(resp.Stderr) != 0 || resp.ExitCode != 0 {
			t.Fatalf("stdout %d bytes (want %d), stderr %q, exit %d", len(resp.Stdout), 16<<20-64, resp.Stderr, resp.ExitCode)
		}
	})

	t.Run("50 in parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := execSync([]string{"echo", strconv.Itoa(i)}, 60)
				if err != nil {
					errs <- err
				} else if string(resp.Stdout) != strconv.Itoa(i)+"\n" || resp.ExitCode != 0 {
					errs <- fmt.Errorf("exec %d: stdout %q exit %d", i, resp.Stdout, resp.ExitCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("bad targets", func(t *testing.T) {
		_, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: "nosuchcontainer", Cmd: []string{"true"}})
		wantCode(t, "ExecSync into an unknown container", err, codes.NotFound)
		done := d.RunContainer(t, podID, pod, framework.Sh("done", "true"))
		d.WaitForState(t, done, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
		_, err = d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: done, Cmd: []string{"true"}})
		wantCode(t, "ExecSync into an exited container", err, codes.FailedPrecondition)
		_, err = d.Runtime.Exec(framework.Ctx(t), &runtimeapi.ExecRequest{ContainerId: done, Cmd: []string{"true"}, Stdout: true})
		wantCode(t, "Exec into an exited container", err, codes.FailedPrecondition)
		_, err = d.Runtime.Exec(framework.Ctx(t), &runtimeapi.ExecRequest{ContainerId: "nosuchcontainer", Cmd: []string{"true"}, Stdout: true})
		wantCode(t, "Exec into an unknown container", err, codes.NotFound)
		_, err = d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id})
		wantCode(t, "ExecSync without a command", err, codes.InvalidArgument)
	})
}

func TestExecStream(t *testing.T) {
	d := framework.Shared(t)
	_, id := runningContainer(t, d, "exec")

	for _, via := range []string{viaSPDY, viaWebSocket} {
		t.Run("stdin and exit code via "+via, func(t *testing.T) {
			u := execURL(t, d, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "read x; echo got $x; read y; echo also $y; echo warn >&2; exit 4"},
				Stdin: true, Stdout: true, Stderr: true})
			var stdout, stderr bytes.Buffer
			err := executor(t, u, via).StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{
				Stdin: strings.NewReader("one\ntwo\n"), Stdout: &stdout, Stderr: &stderr})
			if code := exitCode(t, err); code != 4 || stdout.String() != "got one\nalso two\n" || stderr.String() != "warn\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
			}
		})
	}

	t.Run("stdin to its end", func(t *testing.T) {
		// SPDY carries the end of stdin: cat ends and exits 0.
		u := execURL(t, d, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"cat"}, Stdin: true, Stdout: true})
		var stdout bytes.Buffer
		data := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB through and back
		err := executor(t, u, viaSPDY).StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{Stdin: strings.NewReader(data), Stdout: &stdout})
		if code := exitCode(t, err); code != 0 || stdout.String() != data {
			t.Fatalf("exit %d, %d bytes back of %d", code, stdout.Len(), len(data))
		}
	})

	t.Run("missing command", func(t *testing.T) {
		u := execURL(t, d, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"/no/such/cmd"}, Stdout: true, Stderr: true})
		var stderr bytes.Buffer
		err := executor(t, u, viaSPDY).StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{Stdout: io.Discard, Stderr: &stderr})
		if code := exitCode(t, err); code == 0 || !strings.Contains(stderr.String(), "/no/such/cmd") {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
	})

	for _, via := range []string{viaSPDY, viaWebSocket} {
		t.Run("tty and resize via "+via, func(t *testing.T) {
			u := execURL(t, d, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh"}, Stdin: true, Stdout: true, Tty: true})
			inR, inW := io.Pipe()
			defer inW.Close()
			var out syncBuf
			sizes := make(sizeQueue, 1)
			sizes <- remotecommand.TerminalSize{Width: 100, Height: 30}
			done := make(chan error, 1)
			go func() {
				done <- executor(t, u, via).StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{
					Stdin: inR, Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
				close(sizes)
			}()
			typeUntil(t, inW, &out, "stty size\n", "30 100")
			sizes <- remotecommand.TerminalSize{Width: 120, Height: 50}
			typeUntil(t, inW, &out, "stty size\n", "50 120")
			typeUntil(t, inW, &out, "tty\n", "/dev/pts/")
			if _, err := io.WriteString(inW, "exit 3\n"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if code := exitCode(t, err); code != 3 {
					t.Fatalf("exit %d; output %q", code, out.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("shell did not exit; output %q", out.String())
			}
		})
	}

	t.Run("client disconnects", func(t *testing.T) {
		for _, withStdin := range []bool{false, true} {
			m := marker()
			u := execURL(t, d, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo started; exec sleep " + m},
				Stdin: withStdin, Stdout: true})
			ctx, cancel := context.WithCancel(context.Background())
			var out syncBuf
			opts := remotecommand.StreamOptions{Stdout: &out}
			if withStdin {
				r, w := io.Pipe()
				defer w.Close()
				opts.Stdin = r
			}
			done := make(chan error, 1)
			go func() { done <- executor(t, u, viaSPDY).StreamWithContext(ctx, opts) }()
			waitOutput(t, &out, "started", 10*time.Second)
			if len(procsNamed(m)) == 0 {
				t.Fatalf("exec'd sleep %s not found while running", m)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("client did not return after its context ended")
			}
			// berthd notices the closed connection and ends the process.
			waitNoProcs(t, m, 5*time.Second)
		}
	})

	t.Run("berth exec -i", func(t *testing.T) {
		cmd := exec.Command(framework.BerthBinary(t), "--socket", d.Socket, "exec", "-i", id, "sh", "-c", "read x; echo got $x; echo err >&2; exit 5")
		cmd.Stdin = strings.NewReader("hi\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 || stdout.String() != "got hi\n" || stderr.String() != "err\n" {
			t.Fatalf("berth exec -i = %v; stdout %q stderr %q", err, stdout.String(), stderr.String())
		}
	})

	t.Run("single-use URL", func(t *testing.T) {
		u := execURL(t, d, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
		if err := executor(t, u, viaSPDY).StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if err := executor(t, u, viaSPDY).StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
			t.Fatal("second use of an exec URL succeeded")
		}
	})
}

// typeUntil types cmd into a terminal until its output shows want (a resize
// reaches the shell asynchronously).
func typeUntil(t *testing.T, in io.Writer, out *syncBuf, cmd, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; output %q", want, out.String())
		}
		if _, err := io.WriteString(in, cmd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func TestAttach(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "attach")
	podID := d.RunPod(t, pod)

	attach := func(t *testing.T, req *runtimeapi.AttachRequest, via string, ctx context.Context, opts remotecommand.StreamOptions) error {
		t.Helper()
		resp, err := d.Runtime.Attach(framework.Ctx(t), req)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		return executor(t, resp.Url, via).StreamWithContext(ctx, opts)
	}

	t.Run("output", func(t *testing.T) {
		id := d.RunContainer(t, podID, pod, framework.Sh("talker", "i=0; while true; do echo line $i; echo oops $i >&2; i=$((i+1)); sleep 0.1; done"))
		for _, via := range []string{viaSPDY, viaWebSocket} {
			var stdout, stderr syncBuf
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- attach(t, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true, Stderr: true}, via, ctx,
					remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
			}()
			waitOutput(t, &stdout, "line ", 10*time.Second)
			waitOutput(t, &stderr, "oops ", 10*time.Second)
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("attach did not end after the client left")
			}
		}
	})

	t.Run("stdin to cat", func(t *testing.T) {
		cfg := framework.ContainerConfig("cat", "cat")
		cfg.Stdin, cfg.StdinOnce = true, true
		id := d.RunContainer(t, podID, pod, cfg)
		var stdout bytes.Buffer
		err := attach(t, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true}, viaSPDY, framework.Ctx(t),
			remotecommand.StreamOptions{Stdin: strings.NewReader("ping\npong\n"), Stdout: &stdout, Stderr: io.Discard})
		if err != nil || stdout.String() != "ping\npong\n" {
			t.Fatalf("attach = %v, stdout %q", err, stdout.String())
		}
		// stdin_once: the end of our input was cat's end of input.
		st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 10*time.Second)
		if st.ExitCode != 0 {
			t.Fatalf("cat exited %d", st.ExitCode)
		}
	})

	t.Run("tty container with resize", func(t *testing.T) {
		cfg := framework.ContainerConfig("shell", "sh")
		cfg.Stdin, cfg.Tty = true, true
		id := d.RunContainer(t, podID, pod, cfg)
		inR, inW := io.Pipe()
		var out syncBuf
		sizes := make(sizeQueue, 1)
		sizes <- remotecommand.TerminalSize{Width: 90, Height: 20}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- attach(t, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true}, viaSPDY, ctx,
				remotecommand.StreamOptions{Stdin: inR, Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
			close(sizes)
		}()
		typeUntil(t, inW, &out, "stty size\n", "20 90")
		sizes <- remotecommand.TerminalSize{Width: 110, Height: 40}
		typeUntil(t, inW, &out, "stty size\n", "40 110")
		if _, err := io.WriteString(inW, "exit 0\n"); err != nil {
			t.Fatal(err)
		}
		d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 10*time.Second)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("attach did not end when the container exited")
		}
		inW.Close()
	})

	t.Run("stdin refused without stdin", func(t *testing.T) {
		id := d.RunContainer(t, podID, pod, framework.Sh("nostdin", "while true; do sleep 1; done"))
		_, err := d.Runtime.Attach(framework.Ctx(t), &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true})
		wantCode(t, "Attach with stdin to a container without", err, codes.FailedPrecondition)
	})
}

func TestPortForward(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "portfwd")
	podID := d.RunPod(t, pod)
	web := d.RunContainer(t, podID, pod, framework.Sh("web",
		"mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"))
	// A refused connection ends a client-go forward (as it ends kubectl
	// port-forward): wait until httpd listens.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: web, Cmd: []string{"wget", "-q", "-O", "-", "http://127.0.0.1:8080/"}, Timeout: 5})
		if err == nil && resp.ExitCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("httpd not answering in the pod: %v, %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	resp, err := d.Runtime.PortForward(framework.Ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{8080}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fwdDone := make(chan error, 1)
	go func() { fwdDone <- pf.ForwardPorts() }()
	defer func() {
		close(stop)
		<-fwdDone
	}()
	select {
	case <-ready:
	case err := <-fwdDone:
		t.Fatalf("ForwardPorts: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("GetPorts = %v, %v", ports, err)
	}
	local := fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local)
	// A few requests, each a new stream over the same forward.
	for range 3 {
		if body, err := fetchBody(local); err != nil || body != "hello-from-pod\n" {
			t.Fatalf("GET through the forward: %q, %v", body, err)
		}
	}

	_, err = d.Runtime.PortForward(framework.Ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: "nosuchpod", Port: []int32{80}})
	wantCode(t, "PortForward to an unknown pod", err, codes.NotFound)
}

func fetchBody(u string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
