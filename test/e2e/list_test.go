package e2e

import (
	"sort"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestListFiltersAndStreams(t *testing.T) {
	d := framework.Shared(t)
	podA := d.PodConfig(t, "lista")
	podA.Labels["app"] = "a"
	podB := d.PodConfig(t, "listb")
	podB.Labels["app"] = "b"
	a, b := d.RunPod(t, podA), d.RunPod(t, podB)

	c1 := d.RunContainer(t, a, podA, framework.Sh("run1", "sleep 1000"))
	c2 := d.RunContainer(t, a, podA, framework.Sh("done2", "true"))
	cfg3 := framework.Sh("run3", "sleep 1000")
	cfg3.Labels["tier"] = "three"
	c3 := d.RunContainer(t, b, podB, cfg3)
	c4 := d.CreateContainer(t, b, podB, framework.Sh("created4", "true"))
	d.WaitForState(t, c2, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	d.WaitForState(t, c1, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	d.WaitForState(t, c3, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)

	running := &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	ctrCases := []struct {
		name   string
		filter *runtimeapi.ContainerFilter
		want   []string
	}{
		{"all", nil, sorted(c1, c2, c3, c4)},
		{"id", &runtimeapi.ContainerFilter{Id: c2}, []string{c2}},
		{"unknown id", &runtimeapi.ContainerFilter{Id: "nope"}, nil},
		{"running", &runtimeapi.ContainerFilter{State: running}, sorted(c1, c3)},
		{"exited", &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_EXITED}}, []string{c2}},
		{"created", &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_CREATED}}, []string{c4}},
		{"pod", &runtimeapi.ContainerFilter{PodSandboxId: a}, sorted(c1, c2)},
		{"pod and state", &runtimeapi.ContainerFilter{PodSandboxId: b, State: running}, []string{c3}},
		{"label", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"tier": "three"}}, []string{c3}},
		{"label and name", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"tier": "three", "io.kubernetes.container.name": "run1"}}, nil},
	}
	for _, tc := range ctrCases {
		if got := containerIDs(t, d, tc.filter); !equalIDs(got, tc.want) {
			t.Errorf("ListContainers %s: got %v, want %v", tc.name, got, tc.want)
		}
		stream, err := d.Runtime.StreamContainers(framework.Ctx(t), &runtimeapi.StreamContainersRequest{Filter: tc.filter})
		if err != nil {
			t.Fatalf("StreamContainers: %v", err)
		}
		var got []string
		for _, m := range streamAll(t, stream.Recv) {
			for _, c := range m.Containers {
				got = append(got, c.Id)
			}
		}
		sort.Strings(got)
		if !equalIDs(got, tc.want) {
			t.Errorf("StreamContainers %s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	ready := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	notReady := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	podCases := func(stage string, cases []struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}) {
		for _, tc := range cases {
			if got := podIDs(t, d, tc.filter); !equalIDs(got, tc.want) {
				t.Errorf("%s: ListPodSandbox %s: got %v, want %v", stage, tc.name, got, tc.want)
			}
			stream, err := d.Runtime.StreamPodSandboxes(framework.Ctx(t), &runtimeapi.StreamPodSandboxesRequest{Filter: tc.filter})
			if err != nil {
				t.Fatalf("StreamPodSandboxes: %v", err)
			}
			var got []string
			for _, m := range streamAll(t, stream.Recv) {
				for _, p := range m.PodSandboxes {
					got = append(got, p.Id)
				}
			}
			sort.Strings(got)
			if !equalIDs(got, tc.want) {
				t.Errorf("%s: StreamPodSandboxes %s: got %v, want %v", stage, tc.name, got, tc.want)
			}
		}
	}
	type pc = struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}
	podCases("both ready", []pc{
		{"all", nil, sorted(a, b)},
		{"id", &runtimeapi.PodSandboxFilter{Id: b}, []string{b}},
		{"ready", &runtimeapi.PodSandboxFilter{State: ready}, sorted(a, b)},
		{"not ready", &runtimeapi.PodSandboxFilter{State: notReady}, nil},
		{"label", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "a"}}, []string{a}},
		{"label miss", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "c"}}, nil},
	})
	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}
	podCases("b stopped", []pc{
		{"ready", &runtimeapi.PodSandboxFilter{State: ready}, []string{a}},
		{"not ready", &runtimeapi.PodSandboxFilter{State: notReady}, []string{b}},
		{"label and state", &runtimeapi.PodSandboxFilter{State: ready, LabelSelector: map[string]string{"app": "b"}}, nil},
	})
	// Stopping a pod stops its containers.
	if st := d.ContainerStatus(t, c3); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container of a stopped pod is %v, want EXITED", st.State)
	}
	if got := containerIDs(t, d, &runtimeapi.ContainerFilter{State: running}); !equalIDs(got, []string{c1}) {
		t.Errorf("running containers after pod b stopped: %v, want [%s]", got, c1)
	}
}
