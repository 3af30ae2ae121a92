package kubelet

import (
	"encoding/json"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// snapshot is what must not change across a daemon or kubelet restart: the
// sandbox id and each container's id and restart count.
type snapshot struct {
	Sandbox    string
	Containers map[string]string
	Restarts   map[string]int32
}

func (e *env) snapshot(name string) snapshot {
	e.t.Helper()
	p := e.running(name)
	sb := e.sandbox(name)
	if sb == nil {
		e.t.Fatalf("no sandbox for %s", name)
	}
	s := snapshot{Sandbox: sb.Id, Containers: map[string]string{}, Restarts: map[string]int32{}}
	for _, c := range p.Status.ContainerStatuses {
		s.Containers[c.Name] = c.id()
		s.Restarts[c.Name] = c.RestartCount
	}
	return s
}

func (e *env) sameAfter(what string, before snapshot, name string) {
	e.t.Helper()
	after := e.snapshot(name)
	a, _ := json.Marshal(after)
	b, _ := json.Marshal(before)
	if string(a) != string(b) {
		e.t.Errorf("%s: pod %s changed: before %s, after %s", what, name, b, a)
	}
	// berthd lists no other sandbox or container for the pod.
	sbs, err := e.d.Runtime.ListPodSandbox(framework.Ctx(e.t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(sbs.Items) != 1 {
		e.t.Errorf("%s: berthd lists %d sandboxes, want 1", what, len(sbs.Items))
	}
	if n := len(e.containers(after.Sandbox)); n != len(after.Containers) {
		e.t.Errorf("%s: berthd lists %d containers in the pod, want %d", what, n, len(after.Containers))
	}
}

const steadyPod = `  containers:
  - name: a
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
  - name: b
    image: {{image}}
    command: ["sh", "-c", "while true; do echo tick; sleep 1; done"]
`

// berthd killed with kill -9 and started again while kubelet runs: kubelet
// keeps the pod as it was (no container restarted, no sandbox re-created).
func TestBerthdKilledWhileKubeletRuns(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("steady", podYAML("steady", steadyPod))
	before := e.snapshot("steady")
	e.d.Kill9(t)
	// Long enough for kubelet to notice: several PLEG relists and a runtime
	// status check fail.
	time.Sleep(8 * time.Second)
	e.d.Restart(t)
	// Long enough for kubelet to relist, sync the pod and run probes again.
	time.Sleep(15 * time.Second)
	e.sameAfter("berthd kill -9 and restart", before, "steady")
}

// kubelet stopped and started again while berthd runs: the new kubelet
// adopts the running pod instead of restarting it.
func TestKubeletRestartAdoptsPods(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("steady", podYAML("steady", steadyPod))
	before := e.snapshot("steady")
	e.k.Stop(t)
	time.Sleep(2 * time.Second)
	e.k.Start(t)
	time.Sleep(15 * time.Second)
	e.sameAfter("kubelet restart", before, "steady")
}
