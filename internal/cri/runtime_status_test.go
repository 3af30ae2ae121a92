package cri

import (
	"context"
	"log/slog"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/runtime"
)

// fakeHandler answers Name and Features; other calls would panic.
type fakeHandler struct {
	runtime.Handler
	name     string
	features runtime.Features
}

func (h fakeHandler) Name() string               { return h.name }
func (h fakeHandler) Features() runtime.Features { return h.features }

type fakeHandlers []runtime.Handler

func (f fakeHandlers) Handlers() []runtime.Handler { return f }
func (f fakeHandlers) Default() string             { return "runc" }

func TestStatusFeatures(t *testing.T) {
	s := &Server{Config: config.Default(), Log: slog.Default(), Runtimes: fakeHandlers{
		fakeHandler{name: "runc", features: runtime.Features{RecursiveReadOnlyMounts: true}},
		fakeHandler{name: "runsc", features: runtime.Features{PodSandbox: true}},
	}}
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// critest and kubelet read supplemental_groups_policy from here.
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Errorf("features %v: supplemental_groups_policy not advertised", resp.GetFeatures())
	}
	if resp.GetFeatures().GetMountOptions() {
		t.Error("mount_options advertised but Mount.mount_options is not applied")
	}
	got := map[string]*runtimeapi.RuntimeHandlerFeatures{}
	for _, h := range resp.GetRuntimeHandlers() {
		got[h.GetName()] = h.GetFeatures()
	}
	if len(got) != 3 {
		t.Fatalf("handlers %v, want runc, runsc and the unnamed default", got)
	}
	for name, rro := range map[string]bool{"runc": true, "": true, "runsc": false} {
		if got[name].GetRecursiveReadOnlyMounts() != rro {
			t.Errorf("handler %q: recursive_read_only_mounts %v, want %v", name, !rro, rro)
		}
		if got[name].GetUserNamespaces() {
			t.Errorf("handler %q advertises user namespaces", name)
		}
	}
}
