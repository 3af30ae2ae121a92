package cri

import (
	"context"
	"log/slog"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/config"
)

func TestStatusFeatures(t *testing.T) {
	cfg := config.Default()
	cfg.Runtimes = map[string]config.Runtime{
		"runc":  {Path: "runc", Features: config.RuntimeFeatures{RecursiveReadOnlyMounts: true}},
		"runsc": {Path: "runsc"},
	}
	s := &Server{Config: cfg, Log: slog.Default()}
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
