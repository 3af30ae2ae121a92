package e2e

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestPIDNamespaceTarget is `kubectl debug --target`: a container with
// namespace_options.pid = TARGET joins the target container's PID
// namespace and sees its processes; a target that is missing, in another
// pod or not running is refused with NotFound, InvalidArgument and
// FailedPrecondition.
func TestPIDNamespaceTarget(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "pidtarget")
	podID := d.RunPod(t, pod)
	target := d.RunContainer(t, podID, pod, framework.Sh("app", "exec sleep 4243"))

	debug := func(name, targetID string) *runtimeapi.ContainerConfig {
		cfg := framework.Sh(name, "echo pid=$(readlink /proc/self/ns/pid); ps -o pid,args")
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		cfg.Linux.SecurityContext.NamespaceOptions.TargetId = targetID
		return cfg
	}
	_, out := runToExit(t, d, podID, pod, debug("debugger", target))
	if !strings.Contains(out, "sleep 4243") {
		t.Errorf("the debug container does not see the target's process:\n%s", out)
	}
	// The target's init is PID 1 in the namespace the debugger joined.
	if !strings.Contains(out, "1 sleep 4243") {
		t.Errorf("the target's sleep is not PID 1 of the joined namespace:\n%s", out)
	}
	// A container of its own does not see it.
	_, own := runToExit(t, d, podID, pod, framework.Sh("own", "ps -o pid,args"))
	if strings.Contains(own, "sleep 4243") {
		t.Errorf("a PID CONTAINER container sees the target's process:\n%s", own)
	}

	create := func(cfg *runtimeapi.ContainerConfig, inPod string, podCfg *runtimeapi.PodSandboxConfig) error {
		framework.MakeLogDir(t, podCfg, cfg)
		_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: inPod, Config: cfg, SandboxConfig: podCfg})
		return err
	}
	if err := create(debug("missing", "0123456789abcdef"), podID, pod); status.Code(err) != codes.NotFound {
		t.Errorf("target missing: %v, want NotFound", err)
	}
	if err := create(debug("noid", ""), podID, pod); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no target id: %v, want InvalidArgument", err)
	}
	other := d.PodConfig(t, "pidtarget-other")
	otherID := d.RunPod(t, other)
	if err := create(debug("otherpod", target), otherID, other); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "own pod") {
		t.Errorf("target in another pod: %v, want InvalidArgument", err)
	}
	exited := d.RunContainer(t, podID, pod, framework.Sh("short", "true"))
	d.WaitForState(t, exited, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	if err := create(debug("late", exited), podID, pod); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("target exited: %v, want FailedPrecondition", err)
	}
}
