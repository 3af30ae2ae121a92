package cri

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/sandbox"
)

// Evented PLEG takes containers_statuses as the pod's whole container list
// once timestamp is set: every container of the pod, exited ones too, and
// no other pod's.
func TestPodSandboxStatusResponse(t *testing.T) {
	p := &sandbox.Sandbox{ID: "p1", Name: "web", State: sandbox.Ready, CreatedAt: 100}
	cs := []*container.Container{
		{ID: "c2", PodID: "p1", Name: "side", State: container.Exited, ExitCode: 3, Config: &runtimeapi.ContainerConfig{}},
		{ID: "x1", PodID: "p2", Name: "other", State: container.Running, Config: &runtimeapi.ContainerConfig{}},
		{ID: "c1", PodID: "p1", Name: "app", State: container.Running, StopSignal: "SIGQUIT", Config: &runtimeapi.ContainerConfig{}},
	}
	resp := podSandboxStatusResponse(p, cs, 12345)
	if resp.GetTimestamp() != 12345 {
		t.Errorf("timestamp %d, want the time the statuses were read", resp.GetTimestamp())
	}
	if resp.GetStatus().GetId() != "p1" || resp.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod status %v", resp.GetStatus())
	}
	got := map[string]*runtimeapi.ContainerStatus{}
	for _, st := range resp.GetContainersStatuses() {
		got[st.GetId()] = st
	}
	if len(got) != 2 || got["c1"] == nil || got["c2"] == nil {
		t.Fatalf("containers_statuses %v, want c1 and c2", got)
	}
	if got["c2"].GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || got["c2"].GetExitCode() != 3 {
		t.Errorf("exited container status %v", got["c2"])
	}
	if got["c1"].GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || got["c1"].GetStopSignal() != runtimeapi.Signal_SIGNAL_SIGQUIT {
		t.Errorf("running container status %v", got["c1"])
	}

	// A pod without containers still carries the timestamp: "no containers"
	// is then the truth, not a missing field.
	resp = podSandboxStatusResponse(&sandbox.Sandbox{ID: "p3"}, cs, 7)
	if resp.GetTimestamp() != 7 || len(resp.GetContainersStatuses()) != 0 {
		t.Fatalf("empty pod: %v", resp)
	}
}
