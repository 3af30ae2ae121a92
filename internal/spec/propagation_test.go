package spec

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParsePropagation(t *testing.T) {
	for opt, want := range map[string]MountPropagation{
		"":                  {MountPoint: "/m"},
		"shared:12":         {MountPoint: "/m", Shared: true},
		"master:3":          {MountPoint: "/m", Slave: true},
		"shared:4 master:3": {MountPoint: "/m", Shared: true, Slave: true},
		"unbindable":        {MountPoint: "/m"},
	} {
		if got := parsePropagation("/m", opt); got != want {
			t.Errorf("%q: %+v, want %+v", opt, got, want)
		}
	}
}

func TestMountPropagationChecked(t *testing.T) {
	hosts := map[string]MountPropagation{
		"/private": {MountPoint: "/private"},
		"/shared":  {MountPoint: "/shared", Shared: true},
		"/slave":   {MountPoint: "/slave", Slave: true},
	}
	check := func(p string) (MountPropagation, error) { return hosts[p], nil }
	const (
		priv = runtimeapi.MountPropagation_PROPAGATION_PRIVATE
		h2c  = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		bidi = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	)
	for _, tc := range []struct {
		src  string
		mode runtimeapi.MountPropagation
		ok   bool
	}{
		{"/private", priv, true},
		{"/private", h2c, false},
		{"/private", bidi, false},
		{"/slave", h2c, true},
		{"/slave", bidi, false},
		{"/shared", h2c, true},
		{"/shared", bidi, true},
	} {
		m := []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: tc.src, Propagation: tc.mode}}
		_, err := applyOpts(t, withCRIMounts(m, MountOptions{Propagation: check}))
		if tc.ok {
			if err != nil {
				t.Errorf("%s %s: %v", tc.src, tc.mode, err)
			}
			continue
		}
		wantInvalid(t, err, "propagation")
	}
}

// TestOSHostPropagation checks the mountinfo reading on real mounts: a
// private tmpfs, then the same made shared.
func TestOSHostPropagation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	sub := filepath.Join(dir, "a")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	p, err := OSHost{}.Propagation(sub)
	if err != nil || p.MountPoint != dir || p.Shared || p.Slave {
		t.Fatalf("private tmpfs: %+v, %v", p, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if p, err = (OSHost{}).Propagation(sub); err != nil || !p.Shared {
		t.Fatalf("shared tmpfs: %+v, %v", p, err)
	}
}

func TestPrivilegedWithoutHostDevices(t *testing.T) {
	for _, without := range []bool{false, true} {
		in := kubeletContainer()
		in.Sandbox.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
		in.Config.Linux.SecurityContext.Privileged = true
		in.Host = testHostConfig()
		in.Host.PrivilegedWithoutHostDevices = without
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		has := func(p string) bool {
			for _, d := range s.Linux.Devices {
				if d.Path == p {
					return true
				}
			}
			return false
		}
		if has("/dev/sda") == without {
			t.Errorf("privileged_without_host_devices=%v: devices %v", without, s.Linux.Devices)
		}
		if len(s.Process.Capabilities.Bounding) != len(capNames) {
			t.Errorf("privileged without host devices still gets every capability: %v", s.Process.Capabilities.Bounding)
		}
	}
}

func TestValidateAbsurdCPU(t *testing.T) {
	for _, r := range []*runtimeapi.LinuxContainerResources{
		{CpuPeriod: 10}, {CpuPeriod: 2000000}, {CpuQuota: 10}, {CpuShares: 1 << 20},
	} {
		err := checkResources(r)
		wantInvalid(t, err, "cpu_")
	}
	if err := checkResources(&runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: -1, CpuShares: 2}); err != nil {
		t.Errorf("kubelet's values refused: %v", err)
	}
}
