package nri

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/berth-project/berth/internal/cdi"
	"github.com/berth-project/berth/internal/errdefs"
)

// A plugin adding a CDI device goes through berth's CDI resolver.
func TestAdjustCDIThroughResolver(t *testing.T) {
	dir := t.TempDir()
	spec := `cdiVersion: "0.6.0"
kind: example.com/test
devices:
- name: nulldev
  containerEdits:
    env: [CDI_FROM_PLUGIN=1]
    deviceNodes:
    - path: /dev/berth-null
      hostPath: /dev/null
`
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := cdi.New(cdi.Config{SpecDirs: []string{dir}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, s := testContainer("c1")
	adj := &api.ContainerAdjustment{}
	adj.AddCDIDevice(&api.CDIDevice{Name: "example.com/test=nulldev"})
	if err := Adjust(s, adj, r.Inject); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "CDI_FROM_PLUGIN=1") || len(s.Linux.Devices) != 1 {
		t.Errorf("CDI edits not applied: env %v devices %v", s.Process.Env, s.Linux.Devices)
	}
	adj = &api.ContainerAdjustment{}
	adj.AddCDIDevice(&api.CDIDevice{Name: "example.com/test=missing"})
	if err := Adjust(s, adj, r.Inject); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("unknown plugin CDI device: %v", err)
	}
}
