package spec

import (
	"errors"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// validateMinimal validates a bare container config, for tests of one
// field, in a pod with the given log directory.
func validateMinimal(logDir string, mutate func(*runtimeapi.ContainerConfig)) (*Container, error) {
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
	}
	mutate(cfg)
	pod := ValidatedPod(&runtimeapi.PodSandboxConfig{LogDirectory: logDir})
	return ValidateContainer(cfg, pod, &HostConfig{FS: fakeHost{}})
}

func TestValidateLogPath(t *testing.T) {
	for _, tc := range []struct {
		dir, rel, want string
		invalid        bool
	}{
		{"/var/log/pods/ns_p_u", "app/0.log", "/var/log/pods/ns_p_u/app/0.log", false},
		{"/var/log/pods/ns_p_u", "", "", false},
		{"/var/log/pods/ns_p_u", "../x.log", "", true},
		{"/var/log/pods/ns_p_u", "app/../../x.log", "", true},
		{"/var/log/pods/ns_p_u", "/etc/passwd", "", true},
		{"", "app/0.log", "", true},
		{"/var/log/pods/ns_p_u", "a/./b.log", "/var/log/pods/ns_p_u/a/b.log", false},
		// A NUL would end the path for the kernel, and split a
		// monitor's NUL-separated command line into more arguments.
		{"/var/log/pods/ns_p_u", "0.log\x00-r\x00x", "", true},
	} {
		c, err := validateMinimal(tc.dir, func(c *runtimeapi.ContainerConfig) { c.LogPath = tc.rel })
		if tc.invalid {
			if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "log_") {
				t.Errorf("log path (%q, %q): got %v; want InvalidArgument", tc.dir, tc.rel, err)
			}
			continue
		}
		if err != nil || c.LogPath != tc.want {
			t.Errorf("log path (%q, %q) = %+v, %v; want %q", tc.dir, tc.rel, c, err, tc.want)
		}
	}
}

// The config's stop_signal is kept by name (by number for real-time
// signals, which have no name here).
func TestValidateStopSignal(t *testing.T) {
	for sig, want := range map[runtimeapi.Signal]string{
		runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT: "",
		runtimeapi.Signal_SIGNAL_SIGUSR1:         "SIGUSR1",
		runtimeapi.Signal_SIGNAL_SIGRTMINPLUS1:   "35",
	} {
		c, err := validateMinimal("", func(c *runtimeapi.ContainerConfig) { c.StopSignal = sig })
		if err != nil || c.StopSignal != want {
			t.Errorf("%s: got %+v, %v; want %q", sig, c, err, want)
		}
	}
	_, err := validateMinimal("", func(c *runtimeapi.ContainerConfig) { c.StopSignal = 999 })
	wantInvalid(t, err, "stop_signal")
}

// TestValidateContainerNormalises checks the value generation consumes.
func TestValidateContainerNormalises(t *testing.T) {
	i := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	in := kubeletContainer()
	sc := in.Config.Linux.SecurityContext
	sc.RunAsUser, sc.RunAsGroup = i(1000), i(2000)
	sc.SupplementalGroups = []int64{3000, 3000}
	sc.SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Merge
	sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"net_admin"}, DropCapabilities: []string{"ALL"}}
	sc.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	in.Config.Mounts[0].Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	in.Sandbox.Linux.Sysctls = map[string]string{"net/ipv4/ip_forward": "1"}
	c, err := in.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.User.userString("ignored") != "1000:2000" || !c.MergeImageGroups || len(c.SupplementalGroups) != 2 {
		t.Errorf("user %+v groups %v merge %v", c.User, c.SupplementalGroups, c.MergeImageGroups)
	}
	if len(c.Capabilities.Granted) != 1 || c.Capabilities.Granted[0] != "CAP_NET_ADMIN" {
		t.Errorf("capabilities %+v", c.Capabilities)
	}
	if c.PIDMode != runtimeapi.NamespaceMode_POD || c.RootfsPropagation != "rslave" || len(c.Mounts) != 2 {
		t.Errorf("pid %s, rootfs propagation %q, mounts %v", c.PIDMode, c.RootfsPropagation, c.Mounts)
	}
	if c.Seccomp.Type != runtimeapi.SecurityProfile_Unconfined || c.AppArmor != "" {
		t.Errorf("seccomp %+v apparmor %q", c.Seccomp, c.AppArmor)
	}
	if c.Pod.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Errorf("pod sysctls %v", c.Pod.Sysctls)
	}
	// A privileged container's seccomp profile is not read: it gets none.
	in = kubeletContainer()
	in.Sandbox.Linux.SecurityContext.Privileged = true
	in.Config.Linux.SecurityContext.Privileged = true
	in.Config.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/missing.json"}
	if c, err := in.validate(); err != nil || c.Seccomp.Type != runtimeapi.SecurityProfile_Unconfined {
		t.Fatalf("privileged: %+v, %v", c, err)
	}
}

// TestValidatePod is RunPodSandbox's one validation pass.
func TestValidatePod(t *testing.T) {
	good := func() *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Hostname:     "p",
			LogDirectory: "/var/log/pods/ns_p_u",
		}
	}
	host := &HostConfig{}
	if _, err := ValidatePod(good(), host); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if _, err := ValidatePod(nil, host); !errdefs.IsInvalid(err) {
		t.Fatalf("nil config: %v", err)
	}
	secCtx := func(c *runtimeapi.PodSandboxConfig) *runtimeapi.LinuxSandboxSecurityContext {
		c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}}}
		return c.Linux.SecurityContext
	}
	for name, mutate := range map[string]func(*runtimeapi.PodSandboxConfig){
		"metadata.name":          func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" },
		"metadata.uid":           func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" },
		"metadata":               func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil },
		"hostname":               func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "bad_name!" },
		"log_directory":          func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "relative/dir" },
		"log_directory contains": func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "/var/log/pods/x\x00-t" },
		"dns_config": func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}
		},
		"cgroup_parent": func(c *runtimeapi.PodSandboxConfig) {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "relative"}
		},
		"sysctls": func(c *runtimeapi.PodSandboxConfig) {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"kernel.panic": "1"}}
		},
		"namespace_options.network": func(c *runtimeapi.PodSandboxConfig) {
			secCtx(c).NamespaceOptions.Network = runtimeapi.NamespaceMode_CONTAINER
		},
		"namespace_options.ipc": func(c *runtimeapi.PodSandboxConfig) {
			secCtx(c).NamespaceOptions.Ipc = runtimeapi.NamespaceMode_TARGET
		},
		"seccomp_profile_path": func(c *runtimeapi.PodSandboxConfig) { secCtx(c).SeccompProfilePath = "bogus" },
		"seccomp.localhost_ref": func(c *runtimeapi.PodSandboxConfig) {
			secCtx(c).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "rel.json"}
		},
	} {
		cfg := good()
		mutate(cfg)
		_, err := ValidatePod(cfg, host)
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want InvalidArgument naming it", name, err)
		}
	}
	// SELinux labels: ignored without SELinux, refused where it is enforced.
	cfg := good()
	secCtx(cfg).SelinuxOptions = &runtimeapi.SELinuxOption{Type: "spc_t"}
	if _, err := ValidatePod(cfg, host); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidatePod(cfg, &HostConfig{SELinuxEnabled: true}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("selinux on an SELinux node: %v", err)
	}
	// The pause process gets the pod's Localhost profile, else RuntimeDefault.
	cfg = good()
	secCtx(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	if p, err := ValidatePod(cfg, host); err != nil || p.PauseSeccomp.Type != runtimeapi.SecurityProfile_RuntimeDefault {
		t.Fatalf("pause seccomp %+v, %v", p, err)
	}
	secCtx(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost//p.json"}
	if p, err := ValidatePod(cfg, host); err != nil || p.PauseSeccomp.Path != "/p.json" {
		t.Fatalf("pause seccomp %+v, %v", p, err)
	}
}

// CRI mount_options are checked against what the runtime accepts and end
// up after berth's own bind options; unknown ones are refused by name.
func TestValidateMountOptions(t *testing.T) {
	accepted := []string{"ro", "rw", "noexec", "nodev", "nosuid", "rbind", "rprivate", "rnoexec"}
	validate := func(opts []string, ro bool, accepted []string) (*Container, error) {
		cfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			Mounts:   []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/srv", Readonly: ro, MountOptions: opts}},
		}
		return ValidateContainer(cfg, ValidatedPod(&runtimeapi.PodSandboxConfig{}), &HostConfig{FS: fakeHost{paths: map[string]bool{"/srv": true}}, MountOptions: accepted})
	}
	c, err := validate([]string{"noexec", "nodev", "nosuid", "rnoexec"}, true, accepted)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Mounts[0].Options, ","); got != "rbind,rprivate,ro,noexec,nodev,nosuid,rnoexec" {
		t.Errorf("options = %s", got)
	}
	for _, tc := range []struct {
		opts     []string
		ro       bool
		accepted []string
		want     string
	}{
		{[]string{"noexec", "bogus"}, false, accepted, `unknown mount option "bogus"`},
		{[]string{"rbind"}, false, accepted, `"rbind" is not allowed`},
		{[]string{"rprivate"}, false, accepted, "propagation field"},
		{[]string{"rw"}, true, accepted, "contradicts readonly"},
		{[]string{"noexec"}, false, nil, "does not say which mount options"},
	} {
		_, err := validate(tc.opts, tc.ro, tc.accepted)
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mounts[0].mount_options") {
			t.Errorf("mount_options %v: %v, want InvalidArgument with %q", tc.opts, err, tc.want)
		}
	}
}

// userns_options: POD with kubelet's mappings on a handler that supports
// it; what kubelet never sends is refused naming the field.
func TestValidatePodUserNS(t *testing.T) {
	m := func(c, h, l uint32) *runtimeapi.IDMapping {
		return &runtimeapi.IDMapping{ContainerId: c, HostId: h, Length: l}
	}
	pod := func(u *runtimeapi.UserNamespace) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: u},
			}},
		}
	}
	ok := &HostConfig{UserNamespaces: true}
	p, err := ValidatePod(pod(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{m(0, 65536, 65536)}, Gids: []*runtimeapi.IDMapping{m(0, 131072, 65536)}}), ok)
	if err != nil || p.UserNS == nil || p.UserNS.RootUID() != 65536 || p.UserNS.RootGID() != 131072 {
		t.Fatalf("POD: %+v, %v", p, err)
	}
	if p, err := ValidatePod(pod(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}), ok); err != nil || p.UserNS != nil {
		t.Errorf("NODE: %+v, %v", p, err)
	}
	one := []*runtimeapi.IDMapping{m(0, 65536, 65536)}
	for name, tc := range map[string]struct {
		u    *runtimeapi.UserNamespace
		host *HostConfig
		want string
	}{
		"no support":    {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one, Gids: one}, &HostConfig{}, "does not support"},
		"container":     {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, ok, "CONTAINER"},
		"target":        {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, ok, "TARGET"},
		"two":           {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{m(0, 65536, 10), m(10, 70000, 10)}, Gids: one}, ok, "uids: want exactly one"},
		"not from 0":    {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one, Gids: []*runtimeapi.IDMapping{m(1, 65536, 10)}}, ok, "gids: the mapping must start at container id 0"},
		"host root":     {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{m(0, 0, 10)}, Gids: one}, ok, "host id 0"},
		"empty":         {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{m(0, 5, 0)}, Gids: one}, ok, "length is 0"},
		"overflow":      {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{m(0, 1<<32-10, 100)}, Gids: one}, ok, "overflow"},
		"node with map": {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: one}, ok, "NODE"},
	} {
		_, err := ValidatePod(pod(tc.u), tc.host)
		if err == nil || !strings.Contains(err.Error(), "userns_options") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming userns_options with %q", name, err, tc.want)
		}
	}
}
