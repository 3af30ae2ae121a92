package kubelet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// execSync runs cmd in container id through CRI and returns its stdout.
func (e *env) execSync(id string, cmd ...string) string {
	e.t.Helper()
	resp, err := e.d.Runtime.ExecSync(framework.Ctx(e.t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		e.t.Fatalf("ExecSync(%s, %q): %v", id, cmd, err)
	}
	if resp.ExitCode != 0 {
		e.t.Fatalf("ExecSync(%s, %q): exit %d: %s", id, cmd, resp.ExitCode, resp.Stderr)
	}
	return string(resp.Stdout)
}

// criLine is one line of the CRI log format: RFC 3339 time, stream, P
// (partial) or F (full), the text.
var criLine = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

// readCRILog parses a CRI log file into its full lines' texts.
func readCRILog(t *testing.T, p string) ([]string, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	partial := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := criLine.FindStringSubmatch(sc.Text())
		if m == nil {
			return nil, fmt.Errorf("%s: line %q is not in CRI log format", p, sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			return nil, fmt.Errorf("%s: line %q: bad time: %v", p, sc.Text(), err)
		}
		partial += m[4]
		if m[3] == "F" {
			lines = append(lines, partial)
			partial = ""
		}
	}
	return lines, sc.Err()
}

// A static pod reaches Running through kubelet; berthd has its sandbox and
// container with kubelet's metadata; the container log is in CRI format
// under kubelet's pod log directory; deleting the manifest stops the pod and
// kubelet's garbage collector removes it from berthd (and its log
// directory).
func TestStaticPodRunsAndIsRemoved(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("counter", podYAML("counter", `  containers:
  - name: main
    image: {{image}}
    command: ["sh", "-c", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done"]
`))
	start := time.Now()
	p := e.running("counter")
	t.Logf("static pod Running and Ready %v after its manifest was written", time.Since(start).Round(100*time.Millisecond))

	sb := e.sandbox("counter")
	if sb == nil || sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("berthd's sandbox for counter: %v", sb)
	}
	if sb.Metadata.Uid != p.Metadata.UID {
		t.Errorf("sandbox uid %q, kubelet's pod uid %q", sb.Metadata.Uid, p.Metadata.UID)
	}
	cs := p.container("main")
	ctrs := e.containers(sb.Id)
	if len(ctrs) != 1 || ctrs[0].Id != cs.id() || ctrs[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("berthd's containers in the pod: %v; kubelet's status %+v", ctrs, cs)
	}
	if p.Status.PodIP == "" {
		t.Error("kubelet reports no pod IP")
	}
	if got := strings.TrimSpace(e.execSync(cs.id(), "hostname")); got != p.Metadata.Name {
		t.Errorf("hostname in the pod %q, want the pod name %q", got, p.Metadata.Name)
	}

	logPath := e.logFile(p, "main", 0)
	e.eventually(10*time.Second, "log has 5 lines", func() error {
		lines, err := readCRILog(t, logPath)
		if err != nil {
			return err
		}
		if len(lines) < 5 {
			return fmt.Errorf("%d lines", len(lines))
		}
		for i, l := range lines {
			if l != fmt.Sprintf("line-%d", i) {
				return fmt.Errorf("line %d is %q", i, l)
			}
		}
		return nil
	})

	// Deletion: the containers stop within the grace period, then kubelet's
	// GC removes the sandbox from berthd and the pod's log directory.
	e.deletePod("counter")
	start = time.Now()
	e.eventually(30*time.Second, "container stopped after the manifest was deleted", func() error {
		st, err := e.d.Runtime.ContainerStatus(framework.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: cs.id()})
		if err != nil || st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return nil // exited, or already removed
		}
		return fmt.Errorf("state %v", st.Status.State)
	})
	t.Logf("container stopped %v after the manifest was deleted", time.Since(start).Round(100*time.Millisecond))
	e.eventually(3*time.Minute, "sandbox removed by kubelet", func() error {
		if sb := e.sandbox("counter"); sb != nil {
			return fmt.Errorf("sandbox %s still listed (%v)", sb.Id, sb.State)
		}
		return nil
	})
	t.Logf("sandbox removed by kubelet %v after the manifest was deleted", time.Since(start).Round(time.Second))
	e.eventually(time.Minute, "pod log directory removed", func() error {
		if _, err := os.Stat(filepath.Dir(filepath.Dir(logPath))); err == nil {
			return fmt.Errorf("%s still there", filepath.Dir(filepath.Dir(logPath)))
		}
		return nil
	})
	if links := e.logLinks(); len(links) > 0 {
		t.Errorf("kubelet's log symlinks left after the pod was removed: %v", links)
	}
	if pods, err := e.k.pods(); err != nil || pods["counter"] != nil {
		t.Errorf("kubelet still lists the deleted pod (%v)", err)
	}
}

// Init containers run in order, each to completion, before the app
// containers; two app containers share an emptyDir.
func TestInitContainersAndSharedEmptyDir(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("shared", podYAML("shared", `  volumes:
  - name: work
    emptyDir: {}
  initContainers:
  - name: init-1
    image: {{image}}
    command: ["sh", "-c", "sleep 1; echo init-1 >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: init-2
    image: {{image}}
    command: ["sh", "-c", "test -f /work/order && echo init-2 >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: writer
    image: {{image}}
    command: ["sh", "-c", "echo from-writer > /work/data; exec sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: reader
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
    volumeMounts: [{name: work, mountPath: /data}]
`))
	p := e.running("shared")
	for _, name := range []string{"init-1", "init-2"} {
		cs := p.container(name)
		if cs == nil || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.State.Terminated.Reason != "Completed" {
			st, _ := json.Marshal(cs)
			t.Errorf("init container %s: %s, want terminated with exit 0 (Completed)", name, st)
		}
	}
	reader := p.container("reader").id()
	if got := e.execSync(reader, "cat", "/data/order"); got != "init-1\ninit-2\n" {
		t.Errorf("order the init containers ran in: %q, want init-1 then init-2", got)
	}
	e.eventually(10*time.Second, "reader sees writer's file", func() error {
		resp, err := e.d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: reader, Cmd: []string{"cat", "/data/data"}, Timeout: 10})
		if err != nil {
			return err
		}
		if string(resp.Stdout) != "from-writer\n" {
			return fmt.Errorf("exit %d, %q %q", resp.ExitCode, resp.Stdout, resp.Stderr)
		}
		return nil
	})
}

// Exec, HTTP and TCP readiness and liveness probes; a failing (exec or HTTP)
// liveness probe restarts the container, with the restart count and the killed attempt's
// exit code in its status.
func TestProbes(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("probes", podYAML("probes", `  containers:
  - name: web
    image: {{image}}
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
  - name: web2
    image: {{image}}
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8081 -h /www"]
    readinessProbe:
      tcpSocket: {port: 8081}
      periodSeconds: 1
    livenessProbe:
      httpGet: {path: /healthz, port: 8081}
      periodSeconds: 1
  - name: unhealthy-http
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
    livenessProbe:
      httpGet: {path: /healthz, port: 8082}
      periodSeconds: 1
      failureThreshold: 2
  - name: late
    image: {{image}}
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"]
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
  - name: unhealthy
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 2
`))
	p := e.waitPod("probes", 90*time.Second, "web, web2 and late ready, the unhealthy ones restarted", func(p *pod) bool {
		for _, name := range []string{"web", "web2", "late"} {
			if c := p.container(name); c == nil || !c.Ready {
				return false
			}
		}
		for _, name := range []string{"unhealthy", "unhealthy-http"} {
			if c := p.container(name); c == nil || c.RestartCount < 1 || c.LastState.Terminated == nil {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"web", "web2", "late"} {
		if n := p.container(name).RestartCount; n != 0 {
			t.Errorf("%s (passing liveness probe) restarted %d times", name, n)
		}
	}
	if lt := p.container("unhealthy-http").LastState.Terminated; lt.ExitCode != 137 {
		t.Errorf("unhealthy-http's killed attempt: exit code %d (%s), want 137", lt.ExitCode, lt.Reason)
	}
	bad := p.container("unhealthy")
	// sh as PID 1 ignores SIGTERM: killed after the grace period.
	if lt := bad.LastState.Terminated; lt.ExitCode != 137 {
		t.Errorf("unhealthy's killed attempt: exit code %d (%s), want 137", lt.ExitCode, lt.Reason)
	}
	// berthd agrees: the first attempt exited, a later one exists.
	sb := e.sandbox("probes")
	attempts := map[uint32]runtimeapi.ContainerState{}
	for _, c := range e.containers(sb.Id) {
		if c.Metadata.Name == "unhealthy" {
			attempts[c.Metadata.Attempt] = c.State
		}
	}
	if attempts[0] != runtimeapi.ContainerState_CONTAINER_EXITED || len(attempts) < 2 {
		t.Errorf("berthd's attempts of unhealthy: %v, want attempt 0 exited and a later one", attempts)
	}
}

// restartPolicy Never, OnFailure and Always, and a container killed with
// SIGKILL from the host.
func TestRestartPolicies(t *testing.T) {
	e := newEnv(t, envOptions{})
	pods := map[string]string{
		"never-fails":     "  restartPolicy: Never\n  containers:\n  - {name: c, image: {{image}}, command: [sh, -c, 'exit 3']}\n",
		"onfailure-ok":    "  restartPolicy: OnFailure\n  containers:\n  - {name: c, image: {{image}}, command: [sh, -c, 'sleep 1; exit 0']}\n",
		"onfailure-fails": "  restartPolicy: OnFailure\n  containers:\n  - {name: c, image: {{image}}, command: [sh, -c, 'sleep 1; exit 4']}\n",
		"always-ok":       "  restartPolicy: Always\n  containers:\n  - {name: c, image: {{image}}, command: [sh, -c, 'sleep 1; exit 0']}\n",
		"killed":          "  containers:\n  - {name: c, image: {{image}}, command: [sh, -c, 'exec sleep 3600']}\n",
	}
	for name, spec := range pods {
		e.apply(name, podYAML(name, spec))
	}
	p := e.waitPod("never-fails", time.Minute, "Failed", func(p *pod) bool { return p.Status.Phase == "Failed" })
	if c := p.container("c"); c.RestartCount != 0 || c.State.Terminated == nil || c.State.Terminated.ExitCode != 3 {
		st, _ := json.Marshal(c)
		t.Errorf("never-fails: %s, want terminated with exit 3, no restart", st)
	}
	p = e.waitPod("onfailure-ok", time.Minute, "Succeeded", func(p *pod) bool { return p.Status.Phase == "Succeeded" })
	if c := p.container("c"); c.RestartCount != 0 || c.State.Terminated == nil || c.State.Terminated.ExitCode != 0 {
		st, _ := json.Marshal(c)
		t.Errorf("onfailure-ok: %s, want terminated with exit 0, no restart", st)
	}
	p = e.waitPod("onfailure-fails", time.Minute, "restarted twice", func(p *pod) bool { return p.container("c").RestartCount >= 2 })
	if lt := p.container("c").LastState.Terminated; lt == nil || lt.ExitCode != 4 {
		t.Errorf("onfailure-fails: last state %+v, want exit 4", lt)
	}
	p = e.waitPod("always-ok", time.Minute, "restarted twice", func(p *pod) bool { return p.container("c").RestartCount >= 2 })
	if lt := p.container("c").LastState.Terminated; lt == nil || lt.ExitCode != 0 {
		t.Errorf("always-ok: last state %+v, want exit 0", lt)
	}
	if p.Status.Phase != "Running" {
		t.Errorf("always-ok: phase %s, want Running", p.Status.Phase)
	}

	p = e.running("killed")
	id := p.container("c").id()
	resp, err := e.d.Runtime.ContainerStatus(framework.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("container %s's pid from verbose status: %v %q", id, err, resp.Info["info"])
	}
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p = e.waitPod("killed", time.Minute, "restarted after SIGKILL", func(p *pod) bool {
		c := p.container("c")
		return c.RestartCount >= 1 && c.State.Running != nil
	})
	if lt := p.container("c").LastState.Terminated; lt == nil || lt.ExitCode != 137 {
		t.Errorf("killed: last state %+v, want exit 137", lt)
	}
	if p.container("c").id() == id {
		t.Error("killed: still the same container id after the restart")
	}
}

// Deleting a manifest runs the preStop hook, then sends SIGTERM, and waits
// terminationGracePeriodSeconds before SIGKILL.
func TestGracefulDeletion(t *testing.T) {
	e := newEnv(t, envOptions{})
	out := filepath.Join(e.k.Dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	e.apply("graceful", podYAML("graceful", fmt.Sprintf(`  terminationGracePeriodSeconds: 6
  volumes:
  - name: out
    hostPath: {path: %s, type: Directory}
  containers:
  - name: polite
    image: {{image}}
    command: ["sh", "-c", "trap 'echo term >> /out/polite; exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "echo prestop >> /out/polite"]}
  - name: stubborn
    image: {{image}}
    command: ["sh", "-c", "trap 'echo term-ignored >> /out/stubborn' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{name: out, mountPath: /out}]
`, out)))
	p := e.running("graceful")
	stubborn := p.container("stubborn").id()
	start := time.Now()
	e.deletePod("graceful")
	var stopped time.Duration
	e.eventually(30*time.Second, "stubborn stopped", func() error {
		st, err := e.d.Runtime.ContainerStatus(framework.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: stubborn})
		if err != nil {
			return err
		}
		if st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return fmt.Errorf("state %v", st.Status.State)
		}
		stopped = time.Since(start)
		if st.Status.ExitCode != 137 {
			t.Errorf("stubborn (ignores SIGTERM) exit code %d, want 137 (SIGKILL after the grace period)", st.Status.ExitCode)
		}
		return nil
	})
	if stopped < 5*time.Second {
		t.Errorf("stubborn was killed %v after deletion, before the 6 s grace period", stopped)
	}
	t.Logf("stubborn killed %v after deletion (grace period 6 s)", stopped.Round(100*time.Millisecond))
	if b, _ := os.ReadFile(filepath.Join(out, "polite")); string(b) != "prestop\nterm\n" {
		t.Errorf("polite container's record: %q, want the preStop hook then SIGTERM", b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "stubborn")); !strings.HasPrefix(string(b), "term-ignored\n") {
		t.Errorf("stubborn container's record: %q, want SIGTERM before the kill", b)
	}
}
