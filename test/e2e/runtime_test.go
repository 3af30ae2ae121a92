package e2e

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestVersion(t *testing.T) {
	d := framework.Shared(t)
	v, err := d.Runtime.Version(framework.Ctx(t), &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" || v.Version == "" {
		t.Errorf("Version = %+v, want runtime_name berth, runtime_api_version v1, versions set", v)
	}
}

func TestStatus(t *testing.T) {
	d := framework.Shared(t)
	resp, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for _, c := range resp.GetStatus().GetConditions() {
		ready[c.Type] = c.Status
	}
	for _, cond := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		if !ready[cond] {
			t.Errorf("condition %s not true: %v", cond, resp.GetStatus().GetConditions())
		}
	}
	if len(resp.RuntimeHandlers) == 0 {
		t.Errorf("Status lists no runtime_handlers")
	}
	for _, h := range resp.RuntimeHandlers {
		if h.Features == nil {
			t.Errorf("runtime handler %q has no features", h.Name)
		}
	}
	if len(resp.Info) == 0 {
		t.Errorf("verbose Status has no info (want the config)")
	}
}

func TestRuntimeConfig(t *testing.T) {
	d := framework.Shared(t)
	resp, err := d.Runtime.RuntimeConfig(framework.Ctx(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// No systemd on these machines: cgroupfs is the only driver that works.
	if got := resp.GetLinux().GetCgroupDriver(); got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver %v, want CGROUPFS", got)
	}
	_, err = d.Runtime.UpdateRuntimeConfig(framework.Ctx(t), &runtimeapi.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.88.0.0/16"}},
	})
	if err != nil {
		t.Errorf("UpdateRuntimeConfig: %v", err)
	}
}
