package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestNameReservation(t *testing.T) {
	d := framework.Shared(t)
	ctx := framework.Ctx(t)
	pod := d.PodConfig(t, "names")
	first := d.RunPod(t, pod)
	_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	wantCode(t, "second RunPodSandbox with the same metadata", err, codes.AlreadyExists)

	// A new attempt is a new name.
	next := d.PodConfig(t, "names")
	next.Metadata.Uid, next.LogDirectory, next.Linux.CgroupParent = pod.Metadata.Uid, pod.LogDirectory, pod.Linux.CgroupParent
	next.Labels["io.kubernetes.pod.uid"] = pod.Metadata.Uid
	next.Metadata.Attempt = 1
	attempt1 := d.RunPod(t, next)
	if attempt1 == first {
		t.Errorf("attempt 1 got the id of attempt 0")
	}

	cfg := framework.Sh("ctr", "sleep 1000")
	c1 := d.CreateContainer(t, first, pod, cfg)
	_, err = d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: first, Config: cfg, SandboxConfig: pod})
	wantCode(t, "second CreateContainer with the same metadata", err, codes.AlreadyExists)
	// Same container metadata in another pod is fine.
	d.CreateContainer(t, attempt1, next, cfg)
	if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c1}); err != nil {
		t.Fatal(err)
	}
	c2 := d.CreateContainer(t, first, pod, cfg)
	if c2 == c1 {
		t.Errorf("re-created container got the removed one's id")
	}

	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: first}); err != nil {
		t.Fatal(err)
	}
	_, err = d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	wantCode(t, "RunPodSandbox while the stopped pod still exists", err, codes.AlreadyExists)
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: first}); err != nil {
		t.Fatal(err)
	}
	// Removing the pod removed its containers.
	_, err = d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c2})
	wantCode(t, "ContainerStatus of a container of a removed pod", err, codes.NotFound)
	again := d.RunPod(t, pod)
	if again == first {
		t.Errorf("re-created pod got the removed one's id")
	}
	if got := podIDs(t, d, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": pod.Metadata.Uid}}); !equalIDs(got, sorted(attempt1, again)) {
		t.Errorf("pods of uid %s: %v, want %v", pod.Metadata.Uid, got, sorted(attempt1, again))
	}
}

func TestIdempotentStopRemove(t *testing.T) {
	d := framework.Shared(t)
	ctx := framework.Ctx(t)
	const unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, id := range []string{unknown, "nope"} {
		if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
			t.Errorf("StopContainer(%s): %v", id, err)
		}
		if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer(%s): %v", id, err)
		}
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("StopPodSandbox(%s): %v", id, err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("RemovePodSandbox(%s): %v", id, err)
		}
		_, err := d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		wantCode(t, "ContainerStatus of an unknown id", err, codes.NotFound)
		_, err = d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
		wantCode(t, "PodSandboxStatus of an unknown id", err, codes.NotFound)
	}

	// Twice on real objects, as kubelet does (StopPodSandbox comes twice).
	pod := d.PodConfig(t, "twice")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("c", "sleep 1000"))
	for i := 0; i < 2; i++ {
		if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
			t.Errorf("StopContainer #%d: %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer #%d: %v", i+1, err)
		}
	}
	_, err := d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	wantCode(t, "ContainerStatus after RemoveContainer", err, codes.NotFound)
	for i := 0; i < 2; i++ {
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Errorf("StopPodSandbox #%d: %v", i+1, err)
		}
	}
	if ps := d.PodStatus(t, podID); ps.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("stopped pod is %v, want NOTREADY", ps.State)
	}
	for i := 0; i < 2; i++ {
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Errorf("RemovePodSandbox #%d: %v", i+1, err)
		}
	}
	_, err = d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	wantCode(t, "PodSandboxStatus after RemovePodSandbox", err, codes.NotFound)
}

// TestRetrySafeCreate gives up on RunPodSandbox and CreateContainer after a
// very short deadline (as kubelet does after its request timeout) and
// retries with the same metadata: the retry gets the first call's object.
func TestRetrySafeCreate(t *testing.T) {
	d := framework.Shared(t)
	for _, deadline := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond} {
		pod := d.PodConfig(t, "retry")
		short, cancel := context.WithTimeout(context.Background(), deadline)
		resp, err := d.Runtime.RunPodSandbox(short, &runtimeapi.RunPodSandboxRequest{Config: pod})
		cancel()
		var podID string
		switch {
		case err == nil:
			podID = resp.PodSandboxId // fast enough: the result was delivered
		case status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Canceled:
			podID = d.RunPod(t, pod)
		default:
			t.Fatalf("RunPodSandbox with %v deadline: %v", deadline, err)
		}
		sel := &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": pod.Metadata.Uid}}
		if got := podIDs(t, d, sel); !equalIDs(got, []string{podID}) {
			t.Errorf("deadline %v: pods of the retried uid %v, want [%s]", deadline, got, podID)
		}

		cfg := framework.Sh("retried", "sleep 1000")
		framework.MakeLogDir(t, pod, cfg)
		short, cancel = context.WithTimeout(context.Background(), deadline)
		cresp, err := d.Runtime.CreateContainer(short, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		cancel()
		var ctrID string
		switch {
		case err == nil:
			ctrID = cresp.ContainerId
		case status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Canceled:
			ctrID = d.CreateContainer(t, podID, pod, cfg)
		default:
			t.Fatalf("CreateContainer with %v deadline: %v", deadline, err)
		}
		if got := containerIDs(t, d, &runtimeapi.ContainerFilter{PodSandboxId: podID}); !equalIDs(got, []string{ctrID}) {
			t.Errorf("deadline %v: containers of the pod %v, want [%s]", deadline, got, ctrID)
		}
		d.StartContainer(t, ctrID)
	}
}
