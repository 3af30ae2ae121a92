package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// vendorSpec defines example.com/test=nulldev: /dev/null as /dev/berth-null,
// an env var and a mount, plus a spec-wide env var.
const vendorSpec = `cdiVersion: "0.6.0"
kind: example.com/test
containerEdits:
  env:
  - CDI_VENDOR=example
devices:
- name: nulldev
  containerEdits:
    env:
    - CDI_TEST_DEVICE=nulldev
    deviceNodes:
    - path: /dev/berth-null
      hostPath: /dev/null
    mounts:
    - hostPath: /tmp
      containerPath: /cdi-mnt
      options: [bind, ro]
`

func newSpec() *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{Args: []string{"sh"}, Env: []string{"PATH=/bin"}},
		Linux:   &specs.Linux{},
	}
}

func resolver(t *testing.T, dirs ...string) *Resolver {
	t.Helper()
	r, err := New(Config{SpecDirs: dirs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeSpec(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInjectDevice(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, "test.yaml", vendorSpec)
	r := resolver(t, dir)
	s := newSpec()
	cfg := &runtimeapi.ContainerConfig{CDIDevices: []*runtimeapi.CDIDevice{{Name: "example.com/test=nulldev"}}}
	got, err := r.InjectContainer(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"example.com/test=nulldev"}) {
		t.Errorf("devices %v", got)
	}
	for _, e := range []string{"CDI_TEST_DEVICE=nulldev", "CDI_VENDOR=example", "PATH=/bin"} {
		if !slices.Contains(s.Process.Env, e) {
			t.Errorf("env %v lacks %s", s.Process.Env, e)
		}
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/berth-null" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Errorf("device nodes %+v", s.Linux.Devices)
	}
	if s.Linux.Resources == nil || !slices.ContainsFunc(s.Linux.Resources.Devices, func(d specs.LinuxDeviceCgroup) bool {
		return d.Allow && d.Type == "c" && d.Major != nil && *d.Major == 1 && d.Minor != nil && *d.Minor == 3
	}) {
		t.Errorf("no cgroup rule allows the device: %+v", s.Linux.Resources)
	}
	if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/cdi-mnt" && m.Source == "/tmp" }) {
		t.Errorf("mounts %+v", s.Mounts)
	}
}

func TestUnknownDeviceIsFailedPrecondition(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, "test.yaml", vendorSpec)
	r := resolver(t, dir)
	s := newSpec()
	err := r.Inject(s, []string{"example.com/test=nulldev", "example.com/test=missing"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("error %v, want FailedPrecondition", err)
	}
	if !strings.Contains(err.Error(), "example.com/test=missing") || strings.Contains(err.Error(), "test=nulldev,") {
		t.Errorf("error does not name just the unknown device: %v", err)
	}
	if len(s.Process.Env) != 1 || len(s.Linux.Devices) != 0 {
		t.Errorf("spec edited although a device is unknown: %+v", s)
	}
}

func TestAnnotations(t *testing.T) {
	cfg := &runtimeapi.ContainerConfig{
		CDIDevices: []*runtimeapi.CDIDevice{{Name: "example.com/test=b"}},
		Annotations: map[string]string{
			"cdi.k8s.io/vendor.test_dev1": "example.com/test=a,example.com/test=b",
			"other":                       "x",
		},
	}
	got, err := Devices(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"example.com/test=b", "example.com/test=a"}; !slices.Equal(got, want) {
		t.Errorf("devices %v, want %v", got, want)
	}
	cfg.Annotations["cdi.k8s.io/bad"] = "not-a-device"
	if _, err := Devices(cfg); !errdefs.IsInvalid(err) {
		t.Errorf("malformed annotation: %v", err)
	}
	cfg = &runtimeapi.ContainerConfig{CDIDevices: []*runtimeapi.CDIDevice{{Name: "gpu0"}}}
	if _, err := Devices(cfg); !errdefs.IsInvalid(err) {
		t.Errorf("unqualified CDI_devices name: %v", err)
	}
}

func TestSpecAddedLaterIsFound(t *testing.T) {
	static, dynamic := t.TempDir(), filepath.Join(t.TempDir(), "run-cdi")
	r := resolver(t, static, dynamic)
	// The dynamic directory does not exist yet, as on a node before its
	// first DRA driver runs.
	if err := os.MkdirAll(dynamic, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSpec(t, dynamic, "test.yaml", vendorSpec)
	// Inject rescans once on an unknown name, so even before the watch
	// catches up the new device resolves.
	if err := r.Inject(newSpec(), []string{"example.com/test=nulldev"}); err != nil {
		t.Fatal(err)
	}
	// And the watch picks up removals.
	if err := os.Remove(filepath.Join(dynamic, "test.yaml")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(r.Known(), "example.com/test=nulldev") {
		if time.Now().After(deadline) {
			t.Fatal("removed spec still known")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if got := DefaultConfig().SpecDirs; !slices.Equal(got, []string{"/etc/cdi", "/var/run/cdi"}) {
		t.Errorf("default dirs %v", got)
	}
	if err := (Config{SpecDirs: []string{"cdi"}}).Validate(); err == nil {
		t.Error("relative dir accepted")
	}
}
