package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden spec files in testdata")

const (
	testSandboxID   = "78c7168872b7de5187e0168d84ce97c0c6945005f19b09d1803fdc3e496d8747"
	testContainerID = "c89d7637be124309d2d36856df1b64e661acbe4c1f2100fee581feab9c21a3f3"
	testPodUID      = "119a5700db2779af2f1d3b1714ddc0d1"
	testSandboxDir  = "/var/lib/berth/sandboxes/" + testSandboxID
)

// testHostConfig is a fixed host: every capability, no AppArmor, a
// cgroup v1 host like the test machines.
func testHostConfig() HostConfig {
	return HostConfig{
		AllCapabilities: slices.Clone(capNames),
		NodeHostname:    "node1",
		FS: fakeHost{
			paths: map[string]bool{
				"/var/lib/kubelet/pods/" + testPodUID + "/etc-hosts":                  true,
				"/var/lib/kubelet/pods/" + testPodUID + "/containers/ticker/e73dd10f": true,
			},
			devices: map[string][]specs.LinuxDevice{
				"/dev": {testDev("/dev/null", "c", 1, 3), testDev("/dev/sda", "b", 8, 0), testDev("/dev/kmsg", "c", 1, 11)},
			},
		},
	}
}

// kubeletSandbox is the sandbox config kubelet sends for the reference
// pod: a static BestEffort pod "ticker-vm" with its own network.
func kubeletSandbox() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "ticker-vm", Namespace: "default", Uid: testPodUID},
		Hostname:     "ticker-vm",
		LogDirectory: "/var/log/pods/default_ticker-vm_" + testPodUID,
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}},
		Labels:       map[string]string{"io.kubernetes.pod.name": "ticker-vm"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod" + testPodUID,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}
}

// testContainer is a container request with the rest of the input to
// generate its spec: generate validates the request as CreateContainer does,
// then generates.
type testContainer struct {
	*ContainerInput
	Config  *runtimeapi.ContainerConfig
	Sandbox *runtimeapi.PodSandboxConfig
}

// validate checks the pod and the container as RunPodSandbox and
// CreateContainer do.
func (tc *testContainer) validate() (*Container, error) {
	pod, err := ValidatePod(tc.Sandbox, &tc.Host)
	if err != nil {
		return nil, err
	}
	return ValidateContainer(tc.Config, pod, &tc.Host)
}

func generate(ctx context.Context, tc *testContainer) (*specs.Spec, error) {
	c, err := tc.validate()
	if err != nil {
		return nil, err
	}
	in := *tc.ContainerInput
	in.Container = c
	return GenerateContainer(ctx, &in)
}

// kubeletContainer is the container config kubelet 1.37 sends for the
// reference pod's busybox "sh" loop.
func kubeletContainer() *testContainer {
	sb := kubeletSandbox()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "ticker"},
		Image:    &runtimeapi.ImageSpec{Image: "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"},
		Command:  []string{"sh", "-c", "while true; do echo tick; sleep 2; done"},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/" + testPodUID + "/etc-hosts"},
			{ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/" + testPodUID + "/containers/ticker/e73dd10f"},
		},
		LogPath: "ticker/0.log",
		Labels:  map[string]string{"io.kubernetes.container.name": "ticker"},
		Annotations: map[string]string{
			"io.kubernetes.container.hash":                     "a1b2c3d4",
			"io.kubernetes.container.restartCount":             "0",
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
				MaskedPaths:      DefaultMaskedPaths(),
				ReadonlyPaths:    DefaultReadonlyPaths(),
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
		},
	}
	return &testContainer{Sandbox: sb, Config: cfg, ContainerInput: &ContainerInput{
		ID:        testContainerID,
		SandboxID: testSandboxID,
		Image: ImageInfo{
			Name: "localhost/kbase/busybox:1.0",
			ID:   "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741",
			Env:  []string{"PATH=/bin"},
			Cmd:  []string{"sh"},
		},
		RootfsPath: "testdata/rootfs",
		Namespaces: SandboxNamespaces{
			Net: "/run/berth/netns/cni-3a41345e-87ef-1518-69d8-4b4e0dcfbeef",
			IPC: testSandboxDir + "/ns/ipc",
			UTS: testSandboxDir + "/ns/uts",
		},
		HostnamePath: testSandboxDir + "/hostname",
		HostsPath:    testSandboxDir + "/hosts",
		ResolvPath:   testSandboxDir + "/resolv.conf",
		ShmPath:      "/run/berth/sandboxes/" + testSandboxID + "/shm",
		CgroupsPath:  "/kubepods/besteffort/pod" + testPodUID + "/" + testContainerID,
		Host:         testHostConfig(),
	}}
}

// checkGolden compares s with testdata/name (rewritten with -update). The
// default seccomp rules depend on the kernel and architecture, so only
// their presence is compared.
func checkGolden(t *testing.T, name string, s *specs.Spec) {
	t.Helper()
	c := *s
	if s.Linux != nil && s.Linux.Seccomp != nil {
		if len(s.Linux.Seccomp.Syscalls) == 0 {
			t.Fatal("seccomp profile without rules")
		}
		l := *s.Linux
		sc := *l.Seccomp
		sc.Syscalls = nil
		l.Seccomp = &sc
		c.Linux = &l
	}
	got, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	file := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("spec differs from %s (go test -run %s -update rewrites it); got:\n%s", file, t.Name(), got)
	}
}

func readReference(t *testing.T, name string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestGoldenBestEffortContainer(t *testing.T) {
	s, err := generate(context.Background(), kubeletContainer())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "container-besteffort.json", s)
}

func TestGoldenPrivilegedContainer(t *testing.T) {
	in := kubeletContainer()
	in.Sandbox.Linux.SecurityContext.Privileged = true
	sc := in.Config.Linux.SecurityContext
	sc.Privileged = true
	sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	s, err := generate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Fatal("privileged container kept seccomp or masked/readonly paths")
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, in.Host.AllCapabilities) {
		t.Fatalf("privileged caps %v", s.Process.Capabilities.Bounding)
	}
	checkGolden(t, "container-privileged.json", s)

	in.Sandbox.Linux.SecurityContext.Privileged = false
	_, err = generate(context.Background(), in)
	wantInvalid(t, err, "privileged")
}

func TestGoldenSandbox(t *testing.T) {
	in := &SandboxInput{
		ID:         testSandboxID,
		Pod:        ValidatedPod(kubeletSandbox()),
		RootfsPath: "/usr/lib/berth/pause",
		Namespaces: SandboxNamespaces{
			Net: "/run/berth/netns/cni-3a41345e-87ef-1518-69d8-4b4e0dcfbeef",
			IPC: testSandboxDir + "/ns/ipc",
			UTS: testSandboxDir + "/ns/uts",
		},
		CgroupsPath: "/kubepods/besteffort/pod" + testPodUID + "/" + testSandboxID,
		Host:        testHostConfig(),
	}
	s, err := GenerateSandbox(in)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "sandbox-pause.json", s)

	ref := readReference(t, "reference-containerd-1.6.20-sandbox.json")
	if s.Process.User.UID != ref.Process.User.UID || !s.Process.NoNewPrivileges || !s.Root.Readonly || s.Linux.Seccomp == nil {
		t.Fatalf("pause spec less strict than containerd's: user %+v nnp %v", s.Process.User, s.Process.NoNewPrivileges)
	}
	if c := s.Process.Capabilities; len(c.Bounding)+len(c.Effective)+len(c.Permitted) != 0 {
		t.Fatalf("pause has capabilities %v", c)
	}
	if s.Hostname != "" {
		t.Fatal("pause spec sets a hostname while joining the pod's UTS namespace")
	}
	var pid *specs.LinuxNamespace
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			pid = &s.Linux.Namespaces[i]
		}
	}
	if pid == nil || pid.Path != "" {
		t.Fatal("pause must create the pod's PID namespace")
	}
}

// TestBestEffortAtLeastAsSafeAsContainerd checks the kubelet-like container
// against the spec containerd 1.6.20 generated for the same pod: same
// process, and nothing that grants more.
func TestBestEffortAtLeastAsSafeAsContainerd(t *testing.T) {
	s, err := generate(context.Background(), kubeletContainer())
	if err != nil {
		t.Fatal(err)
	}
	ref := readReference(t, "reference-containerd-1.6.20-container.json")

	if !slices.Equal(s.Process.Args, ref.Process.Args) || !slices.Equal(s.Process.Env, ref.Process.Env) || s.Process.Cwd != ref.Process.Cwd {
		t.Fatalf("process differs: %q %q %q", s.Process.Args, s.Process.Env, s.Process.Cwd)
	}
	if s.Process.User.UID != ref.Process.User.UID || s.Process.User.GID != ref.Process.User.GID ||
		!slices.Equal(s.Process.User.AdditionalGids, ref.Process.User.AdditionalGids) {
		t.Fatalf("user %+v, containerd %+v", s.Process.User, ref.Process.User)
	}
	if *s.Process.OOMScoreAdj != *ref.Process.OOMScoreAdj {
		t.Fatalf("oom_score_adj %d", *s.Process.OOMScoreAdj)
	}
	for name, sets := range map[string][2][]string{
		"bounding":  {s.Process.Capabilities.Bounding, ref.Process.Capabilities.Bounding},
		"effective": {s.Process.Capabilities.Effective, ref.Process.Capabilities.Effective},
		"permitted": {s.Process.Capabilities.Permitted, ref.Process.Capabilities.Permitted},
	} {
		for _, c := range sets[0] {
			if !slices.Contains(sets[1], c) {
				t.Errorf("%s capability %s not granted by containerd", name, c)
			}
		}
	}
	if len(s.Process.Capabilities.Ambient) > 0 || len(s.Process.Capabilities.Inheritable) > 0 {
		t.Error("ambient or inheritable capabilities set")
	}
	if ref.Process.NoNewPrivileges && !s.Process.NoNewPrivileges {
		t.Error("no_new_privileges dropped")
	}
	if ref.Root.Readonly && !s.Root.Readonly {
		t.Error("read-only root dropped")
	}
	if ref.Linux.Seccomp != nil && s.Linux.Seccomp == nil {
		t.Error("seccomp dropped")
	}
	for _, p := range ref.Linux.MaskedPaths {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("masked path %s missing", p)
		}
	}
	for _, p := range ref.Linux.ReadonlyPaths {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("read-only path %s missing", p)
		}
	}
	// Same namespaces, joined where containerd joined, none left to the host.
	nsOf := func(sp *specs.Spec) map[specs.LinuxNamespaceType]bool {
		m := map[specs.LinuxNamespaceType]bool{}
		for _, ns := range sp.Linux.Namespaces {
			m[ns.Type] = ns.Path != ""
		}
		return m
	}
	if got, want := nsOf(s), nsOf(ref); !equalNSMaps(got, want) {
		t.Errorf("namespaces %v, containerd %v", got, want)
	}
	if s.Hostname != "" {
		t.Error("hostname set while joining the pod's UTS namespace")
	}
	// Mounts: every destination containerd had, read-only where it was.
	for _, rm := range ref.Mounts {
		m := mountByDest(s, rm.Destination)
		if m == nil {
			t.Errorf("mount %s missing", rm.Destination)
			continue
		}
		if m.Type != rm.Type {
			t.Errorf("mount %s type %s, containerd %s", rm.Destination, m.Type, rm.Type)
		}
		for _, o := range []string{"ro", "nosuid", "noexec", "nodev"} {
			if slices.Contains(rm.Options, o) && !slices.Contains(m.Options, o) {
				t.Errorf("mount %s lacks %s", rm.Destination, o)
			}
		}
	}
	if len(s.Mounts) != len(ref.Mounts) {
		t.Errorf("%d mounts, containerd %d", len(s.Mounts), len(ref.Mounts))
	}
	// Devices: deny all first; only the standard nodes allowed after.
	rules := s.Linux.Resources.Devices
	if len(rules) == 0 || rules[0].Allow || rules[0].Access != "rwm" || rules[0].Major != nil || rules[0].Type != "" {
		t.Fatalf("first device rule %+v", rules)
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("extra device nodes %v", s.Linux.Devices)
	}
	for _, r := range rules[1:] {
		if r.Major == nil || r.Type != "c" || (*r.Major != 1 && *r.Major != 5 && *r.Major != 136) {
			t.Errorf("device rule %+v beyond the standard set", r)
		}
	}
	// Resources and cgroup as kubelet asked.
	if *s.Linux.Resources.CPU.Shares != *ref.Linux.Resources.CPU.Shares || *s.Linux.Resources.CPU.Period != *ref.Linux.Resources.CPU.Period {
		t.Errorf("cpu %+v", s.Linux.Resources.CPU)
	}
	if s.Linux.CgroupsPath != ref.Linux.CgroupsPath {
		t.Errorf("cgroups path %s", s.Linux.CgroupsPath)
	}
	for k, v := range ref.Annotations {
		if s.Annotations[k] != v {
			t.Errorf("annotation %s = %q, containerd %q", k, s.Annotations[k], v)
		}
	}
	if len(s.Linux.Sysctl) != 0 || s.Linux.RootfsPropagation != "" {
		t.Errorf("sysctl %v propagation %q", s.Linux.Sysctl, s.Linux.RootfsPropagation)
	}
}

func equalNSMaps(a, b map[specs.LinuxNamespaceType]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestGenerateContainerVariants(t *testing.T) {
	t.Run("run as user with merge and readonly rootfs", func(t *testing.T) {
		in := kubeletContainer()
		in.RootfsPath = testRootfs(t)
		sc := in.Config.Linux.SecurityContext
		sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
		sc.SupplementalGroups = []int64{3000}
		sc.ReadonlyRootfs = true
		sc.NoNewPrivs = true
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
		in.Config.WorkingDir = "/home/app"
		in.Config.Envs = []*runtimeapi.KeyValue{{Key: "PATH", Value: []byte("/usr/bin")}, {Key: "X", Value: []byte("1")}}
		in.Config.Tty = true
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		u := s.Process.User
		if u.UID != 1000 || u.GID != 1001 || !slices.Equal(u.AdditionalGids, []uint32{10, 29, 1001, 3000}) {
			t.Fatalf("user %+v", u)
		}
		if !s.Root.Readonly || !s.Process.NoNewPrivileges || !s.Process.Terminal || s.Process.Cwd != "/home/app" {
			t.Fatalf("process %+v root %+v", s.Process, s.Root)
		}
		if !slices.Equal(s.Process.Env, []string{"PATH=/usr/bin", "HOSTNAME=ticker-vm", "X=1"}) {
			t.Fatalf("env %q", s.Process.Env)
		}
		if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_BIND_SERVICE"}) {
			t.Fatalf("caps %v", s.Process.Capabilities.Bounding)
		}
		for _, dst := range []string{"/etc/hostname", "/etc/resolv.conf"} {
			if m := mountByDest(s, dst); m == nil || !slices.Contains(m.Options, "ro") {
				t.Fatalf("%s = %+v, want read-only with a read-only rootfs", dst, m)
			}
		}
	})
	t.Run("host network, ipc and pid", func(t *testing.T) {
		in := kubeletContainer()
		in.Sandbox.Hostname = ""
		host := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE}
		in.Sandbox.Linux.SecurityContext.NamespaceOptions = host
		in.Config.Linux.SecurityContext.NamespaceOptions = host
		in.Namespaces = SandboxNamespaces{}
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Linux.Namespaces) != 1 || s.Linux.Namespaces[0].Type != specs.MountNamespace {
			t.Fatalf("namespaces %v", s.Linux.Namespaces)
		}
		if m := mountByDest(s, "/dev/shm"); m == nil || m.Source != "/dev/shm" {
			t.Fatalf("host IPC /dev/shm = %+v", m)
		}
		if !slices.Contains(s.Process.Env, "HOSTNAME=node1") {
			t.Fatalf("env %q", s.Process.Env)
		}
	})
	t.Run("shared pid and sysctls and seccomp default", func(t *testing.T) {
		in := kubeletContainer()
		in.Config.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		in.Config.Linux.SecurityContext.Seccomp = nil
		in.Host.SeccompDefaultWhenUnset = true
		in.Host.OOMScoreAdjMin = new(int)
		in.Config.Linux.Resources.OomScoreAdj = -997
		in.Namespaces.PID = "/proc/4242/ns/pid"
		in.Sandbox.Linux.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 65535"}
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if s.Linux.Sysctl["net.ipv4.ping_group_range"] != "0 65535" || s.Linux.Seccomp == nil || *s.Process.OOMScoreAdj != 0 {
			t.Fatalf("sysctl %v seccomp %v oom %d", s.Linux.Sysctl, s.Linux.Seccomp != nil, *s.Process.OOMScoreAdj)
		}
		found := false
		for _, ns := range s.Linux.Namespaces {
			found = found || (ns.Type == specs.PIDNamespace && ns.Path == "/proc/4242/ns/pid")
		}
		if !found {
			t.Fatalf("namespaces %v", s.Linux.Namespaces)
		}
	})
	t.Run("cgroup namespace on cgroup v2", func(t *testing.T) {
		in := kubeletContainer()
		in.Host.CgroupNamespace = true
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.CgroupNamespace }) {
			t.Fatal("no cgroup namespace")
		}
	})
	t.Run("errors", func(t *testing.T) {
		for name, mutate := range map[string]func(*testContainer) string{
			"no command": func(in *testContainer) string {
				in.Config.Command, in.Image.Cmd = nil, nil
				return "no command"
			},
			"missing host path": func(in *testContainer) string {
				in.Config.Mounts = append(in.Config.Mounts, &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/nope"})
				return "/srv/nope"
			},
			"relative working dir": func(in *testContainer) string {
				in.Config.WorkingDir = "app"
				return "working_dir"
			},
			"bad sysctl": func(in *testContainer) string {
				in.Sandbox.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1+kernel.core_pattern=x"}
				return "sysctls"
			},
			"apparmor on a host without it": func(in *testContainer) string {
				in.Config.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
				return "AppArmor"
			},
			"missing localhost seccomp": func(in *testContainer) string {
				in.Config.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/x.json"}
				return "/var/lib/kubelet/seccomp/x.json"
			},
			"unknown user": func(in *testContainer) string {
				in.Config.Linux.SecurityContext.RunAsUsername = "ghost"
				return "ghost"
			},
		} {
			t.Run(name, func(t *testing.T) {
				in := kubeletContainer()
				mention := mutate(in)
				_, err := generate(context.Background(), in)
				wantInvalid(t, err, mention)
			})
		}
	})
}

// TestValidateContainer checks CreateContainer's one validation pass: each
// bad field is refused as InvalidArgument naming it.
func TestValidateContainer(t *testing.T) {
	if _, err := kubeletContainer().validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mutate  func(*runtimeapi.ContainerConfig)
		mention string
	}{
		"no name":         {func(c *runtimeapi.ContainerConfig) { c.Metadata = nil }, "metadata.name"},
		"no image":        {func(c *runtimeapi.ContainerConfig) { c.Image = nil }, "image.image"},
		"log path escape": {func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../etc/cron.d/x" }, "log_path"},
		"log path abs":    {func(c *runtimeapi.ContainerConfig) { c.LogPath = "/etc/x" }, "log_path"},
		"relative wd":     {func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "x" }, "working_dir"},
		"env key":         {func(c *runtimeapi.ContainerConfig) { c.Envs = []*runtimeapi.KeyValue{{Key: "A=B"}} }, "envs[0]"},
		"mount path": {func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "rel", HostPath: "/x"}}
		}, "mounts[0].container_path"},
		"device perms": {func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/x", HostPath: "/dev/x", Permissions: "x"}}
		}, "devices[0].permissions"},
		"oom": {func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.OomScoreAdj = -2000 }, "oom_score_adj"},
		"negative memory": {func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.MemoryLimitInBytes = -1
		}, "memory_limit_in_bytes"},
		"group without user": {func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 1}
		}, "run_as_group"},
		"unknown cap": {func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}
		}, "capabilities"},
		"masked path": {func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.MaskedPaths = []string{"proc"}
		}, "masked_paths"},
		"seccomp ref without localhost": {func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{LocalhostRef: "/x"}
		}, "seccomp.localhost_ref"},
		"unknown stop signal": {func(c *runtimeapi.ContainerConfig) { c.StopSignal = 99 }, "stop_signal"},
		"legacy apparmor": {func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.ApparmorProfile = "weird"
		}, "apparmor_profile"},
	} {
		t.Run(name, func(t *testing.T) {
			in := kubeletContainer()
			tc.mutate(in.Config)
			_, err := in.validate()
			wantInvalid(t, err, tc.mention)
		})
	}
	in := kubeletContainer()
	in.Config.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"ALL"}}
	if _, err := in.validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateContainer(nil, ValidatedPod(kubeletSandbox()), &in.Host); !errdefs.IsInvalid(err) {
		t.Fatal(err)
	}
}

// A pod in a user namespace: the container joins it with its mappings,
// every bind mount (pod files, CRI volumes) is idmapped recursively, and an
// image volume (idmapped by berth) is left alone.
func TestGenerateUserNamespace(t *testing.T) {
	tc := kubeletContainer()
	tc.Host.UserNamespaces = true
	tc.Host.MountOptions = []string{"ro"}
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 65536 * 7, Length: 65536}}
	u := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
	tc.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
	tc.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
	tc.Config.Mounts = append(tc.Config.Mounts, &runtimeapi.Mount{ContainerPath: "/data", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "sha256:abc"}, ImageSubPath: "d"})
	tc.Namespaces.User = testSandboxDir + "/userns"
	tc.ImageVolumeSources = []string{"/run/berth/containers/x/imagevols/0/d"}
	s, err := generate(context.Background(), tc)
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536 * 7, Size: 65536}}
	if !slices.Equal(s.Linux.UIDMappings, want) || !slices.Equal(s.Linux.GIDMappings, want) {
		t.Errorf("mappings %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: testSandboxDir + "/userns"}) {
		t.Errorf("namespaces %v lack the pod's user namespace", s.Linux.Namespaces)
	}
	seen := 0
	for _, mnt := range s.Mounts {
		if mnt.Type != "bind" {
			continue
		}
		seen++
		idmapped := slices.Contains(mnt.Options, "ridmap") && slices.Equal(mnt.UIDMappings, want)
		if mnt.Destination == "/data" {
			if idmapped || mnt.Source != "/run/berth/containers/x/imagevols/0/d" || !slices.Contains(mnt.Options, "ro") {
				t.Errorf("image volume mount %+v", mnt)
			}
		} else if !idmapped {
			t.Errorf("bind mount %s is not idmapped: %+v", mnt.Destination, mnt)
		}
	}
	if seen < 5 { // hostname, resolv.conf, shm, /etc/hosts, termination-log, /data
		t.Errorf("only %d bind mounts", seen)
	}
}
