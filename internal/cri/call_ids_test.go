package cri

import (
	"fmt"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestAppendRequestIDs(t *testing.T) {
	got := fmt.Sprint(appendRequestIDs(nil, &runtimeapi.CreateContainerRequest{PodSandboxId: "p1"}))
	if got != "[pod p1]" {
		t.Errorf("create: %s", got)
	}
	got = fmt.Sprint(appendRequestIDs(nil, &runtimeapi.StopContainerRequest{ContainerId: "c1"}))
	if got != "[container c1]" {
		t.Errorf("stop: %s", got)
	}
	pull := &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Auth:  &runtimeapi.AuthConfig{Username: "u", Password: "hunter2"},
	}
	got = fmt.Sprint(appendRequestIDs(nil, pull))
	if got != "[image busybox]" {
		t.Errorf("pull: %s", got)
	}
	if got := appendRequestIDs(nil, &runtimeapi.VersionRequest{}); len(got) != 0 {
		t.Errorf("version: %v", got)
	}
}
