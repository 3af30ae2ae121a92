package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestRunscBesideRunc runs a pod of each handler side by side on one node,
// each serving HTTP on its pod IP, and checks what a gVisor pod must do like
// a runc one: reachable pod IP, port-forward to the pod's loopback, exec
// with a timeout that ends the process, a TTY container, its host name. It
// logs the memory the node spends on each pod's helper processes.
func TestRunscBesideRunc(t *testing.T) {
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Fatal("runsc is not on PATH: run hack/install.sh --with-runsc")
	}
	d := framework.Shared(t)
	type pod struct {
		handler string
		cfg     *runtimeapi.PodSandboxConfig
		id, web string
	}
	var pods []*pod
	for _, h := range []string{"runc", "runsc"} {
		p := &pod{handler: h, cfg: d.PodConfig(t, "side-"+h)}
		p.id = runPodWithHandler(t, d, p.cfg, h)
		p.web = d.RunContainer(t, p.id, p.cfg, framework.Sh("web",
			"mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"))
		pods = append(pods, p)
	}
	for _, p := range pods {
		ip := d.PodStatus(t, p.id).GetNetwork().GetIp()
		body, err := fetchEventually(fmt.Sprintf("http://%s:8080/", ip), 15*time.Second)
		if err != nil || strings.TrimSpace(body) != "side-"+p.handler {
			t.Errorf("%s pod: GET its pod IP %s: %q, %v (want its host name)", p.handler, ip, body, err)
		}
	}
	gv := pods[1]

	t.Run("PortForward", func(t *testing.T) {
		if body, err := forwardFetch(t, d, gv.id, 8080); err != nil || strings.TrimSpace(body) != "side-runsc" {
			t.Errorf("GET through a port-forward to the gVisor pod: %q, %v", body, err)
		}
	})

	t.Run("ExecTimeout", func(t *testing.T) {
		start := time.Now()
		_, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: gv.web, Cmd: []string{"sleep", "4321"}, Timeout: 1})
		if err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("ExecSync with a 1 s timeout: %v after %v", err, time.Since(start))
		}
		resp, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: gv.web, Cmd: []string{"sh", "-c", "pgrep sleep || true"}, Timeout: 10})
		if err != nil || strings.TrimSpace(string(resp.GetStdout())) != "" {
			t.Errorf("the timed-out exec's process still runs in the sandbox: %q, %v", resp.GetStdout(), err)
		}
	})

	t.Run("TTY", func(t *testing.T) {
		cfg := framework.Sh("tty", "if [ -t 1 ]; then echo is-a-tty; else echo not-a-tty; fi")
		cfg.Tty = true
		id := d.RunContainer(t, gv.id, gv.cfg, cfg)
		st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
		out := strings.Join(framework.LogTexts(t, framework.LogPath(gv.cfg, cfg)), "\n")
		if st.ExitCode != 0 || !strings.Contains(out, "is-a-tty") {
			t.Errorf("TTY container under runsc: exit %d, log %q", st.ExitCode, out)
		}
	})

	// Memory: every host process of the pod outside its containers, by
	// name, found by the pod's or its containers' ids in their command
	// lines (conmon -c <id>, the runsc shim's waiter, runsc-sandbox ...).
	for _, p := range pods {
		ids := []string{p.id, p.web}
		procs := pssByName(t, ids)
		var parts []string
		total := 0.0
		for name, kib := range procs {
			parts = append(parts, fmt.Sprintf("%s %.1f MiB", name, float64(kib)/1024))
			total += float64(kib) / 1024
		}
		t.Logf("%s pod with one container: host processes PSS %.1f MiB: %s", p.handler, total, strings.Join(parts, ", "))
	}
}

// fetchEventually GETs u until it answers or timeout passes.
func fetchEventually(u string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		body, err := fetchBody(u)
		if err == nil || time.Now().After(deadline) {
			return body, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forwardFetch port-forwards a local port to port of pod podID, as kubectl
// does, and GETs / through it (after the server answers in the pod).
func forwardFetch(t *testing.T, d *framework.Daemon, podID string, port int32) (string, error) {
	resp, err := d.Runtime.PortForward(framework.Ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{port}})
	if err != nil {
		return "", err
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		return "", err
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		return "", err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(int(port))}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		return "", err
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("port-forward not ready")
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		return "", fmt.Errorf("GetPorts = %v, %v", ports, err)
	}
	return fetchBody(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
}

// pssByName sums the PSS (KiB) of the host processes whose command line
// names one of ids, by process name.
func pssByName(t *testing.T, ids []string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		match := false
		for _, id := range ids {
			if strings.Contains(string(cmd), id) {
				match = true
			}
		}
		if !match {
			continue
		}
		roll, err := os.ReadFile(filepath.Join("/proc", e.Name(), "smaps_rollup"))
		if err != nil {
			continue
		}
		name := filepath.Base(args[0])
		if len(args) > 3 && name == "sh" && args[1] == "-c" {
			name += " " + args[3] // $0 names the script
		}
		for _, a := range args[1:] {
			if a == "wait" || a == "start" || a == "exec" {
				name += " " + a
				break
			}
		}
		for _, line := range strings.Split(string(roll), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				kib, _ := strconv.Atoi(f[1])
				out[name] += kib
			}
		}
	}
	return out
}

// TestRunscHostNetwork runs a gVisor pod on the node's network: its
// server's port is the host's.
func TestRunscHostNetwork(t *testing.T) {
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Fatal("runsc is not on PATH: run hack/install.sh --with-runsc")
	}
	d := framework.Shared(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pod := d.PodConfig(t, "gvisorhost")
	pod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	podID := runPodWithHandler(t, d, pod, "runsc")
	cfg := framework.Sh("web", fmt.Sprintf("mkdir -p /tmp/www && echo on-host-net > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:%d -h /tmp/www", port))
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	d.RunContainer(t, podID, pod, cfg)
	body, err := fetchEventually(fmt.Sprintf("http://127.0.0.1:%d/", port), 15*time.Second)
	if err != nil || strings.TrimSpace(body) != "on-host-net" {
		t.Errorf("GET the host-network gVisor pod's port on the host: %q, %v", body, err)
	}
}

// TestRunscMemory measures what the node spends per pod of each handler,
// for docs/PERFORMANCE.md: BERTH_MEASURE_PODS=N runs N pods of each with
// one sleeping container and logs the PSS of their host processes by name,
// per pod. Skipped without it.
func TestRunscMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BERTH_MEASURE_PODS"))
	if n <= 0 {
		t.Skip("set BERTH_MEASURE_PODS=N to measure")
	}
	d := framework.Shared(t)
	for _, h := range []string{"runc", "runsc"} {
		var ids []string
		for i := range n {
			pod := d.PodConfig(t, fmt.Sprintf("mem-%s-%d", h, i))
			podID := runPodWithHandler(t, d, pod, h)
			ids = append(ids, podID, d.RunContainer(t, podID, pod, framework.Sh("sleeper", "exec sleep 3600")))
		}
		time.Sleep(2 * time.Second) // the waiters settle into runsc wait
		procs := pssByName(t, ids)
		total := 0.0
		var parts []string
		for name, kib := range procs {
			per := float64(kib) / 1024 / float64(n)
			total += per
			parts = append(parts, fmt.Sprintf("%s %.2f", name, per))
		}
		t.Logf("%s: %d pods of one container: PSS per pod %.2f MiB (%s)", h, n, total, strings.Join(parts, ", "))
	}
}
