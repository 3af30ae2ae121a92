package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// runToExit runs cfg in the pod, waits for it to exit and returns its
// status and its output lines joined by newlines.
func runToExit(t *testing.T, d *framework.Daemon, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (*runtimeapi.ContainerStatus, string) {
	t.Helper()
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
	return st, strings.Join(framework.LogTexts(t, framework.LogPath(pod, cfg)), "\n")
}

func secCtx(cfg *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerSecurityContext {
	return cfg.Linux.SecurityContext
}

func TestSecurityUserAndGroups(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "users")
	podID := d.RunPod(t, pod)
	for _, tc := range []struct {
		name   string
		policy runtimeapi.SupplementalGroupsPolicy
		want   []int64 // effective supplemental groups
	}{
		// The image's /etc/group puts user 1000 in group "extra" (2000).
		{"merge", runtimeapi.SupplementalGroupsPolicy_Merge, []int64{1000, 2000, 3000}},
		{"strict", runtimeapi.SupplementalGroupsPolicy_Strict, []int64{1000, 3000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := framework.Sh("id-"+tc.name, "id -u; id -g; id -G")
			sc := secCtx(cfg)
			sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
			sc.SupplementalGroups = []int64{3000}
			sc.SupplementalGroupsPolicy = tc.policy
			id := d.RunContainer(t, podID, pod, cfg)
			st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
			lines := framework.LogTexts(t, framework.LogPath(pod, cfg))
			if st.ExitCode != 0 || len(lines) != 3 {
				t.Fatalf("exit %d, output %q", st.ExitCode, lines)
			}
			if lines[0] != "1000" || lines[1] != "1000" {
				t.Errorf("uid/gid %q/%q, want 1000/1000", lines[0], lines[1])
			}
			var groups []int64
			for _, f := range strings.Fields(lines[2]) {
				g, _ := strconv.ParseInt(f, 10, 64)
				groups = append(groups, g)
			}
			slices.Sort(groups)
			if !slices.Equal(groups, tc.want) {
				t.Errorf("id -G = %v, want %v", groups, tc.want)
			}
			u := st.GetUser().GetLinux()
			if u == nil || u.Uid != 1000 || u.Gid != 1000 || !slices.Equal(u.SupplementalGroups, tc.want) {
				t.Errorf("ContainerStatus.user = %v, want uid 1000 gid 1000 groups %v", st.GetUser(), tc.want)
			}
		})
	}
	t.Run("username", func(t *testing.T) {
		cfg := framework.Sh("byname", "id -un")
		secCtx(cfg).RunAsUsername = "user"
		st, out := runToExit(t, d, podID, pod, cfg)
		if st.ExitCode != 0 || out != "user" {
			t.Errorf("exit %d output %q, want user", st.ExitCode, out)
		}
	})
}

func TestSecurityReadonlyRootfs(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "rofs")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("ro", "touch /newfile && echo wrote; echo > /tmp/x && echo tmp-wrote; exit 0")
	secCtx(cfg).ReadonlyRootfs = true
	_, out := runToExit(t, d, podID, pod, cfg)
	if strings.Contains(out, "wrote") {
		t.Errorf("a read-only rootfs took a write:\n%s", out)
	}
	if !strings.Contains(out, "Read-only file system") {
		t.Errorf("want EROFS from touch, got:\n%s", out)
	}
}

func TestSecurityCapabilities(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "caps")
	podID := d.RunPod(t, pod)
	const script = "chown 1000 /tmp && echo chowned"
	drop := framework.Sh("nochown", script)
	secCtx(drop).Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"CHOWN"}}
	if st, out := runToExit(t, d, podID, pod, drop); st.ExitCode == 0 || strings.Contains(out, "chowned") {
		t.Errorf("chown without CAP_CHOWN: exit %d, output %q", st.ExitCode, out)
	}
	add := framework.Sh("chown", script)
	secCtx(add).Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"CAP_CHOWN"}}
	if st, out := runToExit(t, d, podID, pod, add); st.ExitCode != 0 || !strings.Contains(out, "chowned") {
		t.Errorf("chown with only CAP_CHOWN: exit %d, output %q", st.ExitCode, out)
	}
}

func TestSecuritySeccompRuntimeDefault(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "seccomp")
	podID := d.RunPod(t, pod)
	// A new user namespace needs no capability, so only seccomp can refuse it.
	const script = "unshare -U true && echo unshared"
	open := framework.Sh("unconfined", script)
	if st, out := runToExit(t, d, podID, pod, open); st.ExitCode != 0 || !strings.Contains(out, "unshared") {
		t.Fatalf("unconfined unshare -U: exit %d, output %q (the control case must pass)", st.ExitCode, out)
	}
	cfg := framework.Sh("default", script)
	secCtx(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	st, out := runToExit(t, d, podID, pod, cfg)
	if st.ExitCode == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("RuntimeDefault unshare -U: exit %d, output %q; want EPERM", st.ExitCode, out)
	}
}

// podCgroupDir is the pod's cgroup parent in a v1 controller hierarchy.
func podCgroupDir(pod *runtimeapi.PodSandboxConfig, controller string) string {
	return filepath.Join("/sys/fs/cgroup", controller, pod.Linux.CgroupParent)
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestResourcesMemoryAndOOM(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "memory")
	podID := d.RunPod(t, pod)

	cfg := framework.Sh("limited", "sleep 300")
	cfg.Linux.Resources.MemoryLimitInBytes = 64 << 20
	id := d.RunContainer(t, podID, pod, cfg)
	limitFile := filepath.Join(podCgroupDir(pod, "memory"), id, "memory.limit_in_bytes")
	if got := readTrim(t, limitFile); got != strconv.Itoa(64<<20) {
		t.Errorf("%s = %s, want %d", limitFile, got, 64<<20)
	}

	// UpdateContainerResources changes the limits of the running container.
	upd := &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 96 << 20,
	}
	if _, err := d.Runtime.UpdateContainerResources(framework.Ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: upd}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	for file, want := range map[string]string{
		filepath.Join(podCgroupDir(pod, "memory"), id, "memory.limit_in_bytes"): strconv.Itoa(96 << 20),
		filepath.Join(podCgroupDir(pod, "cpu"), id, "cpu.cfs_quota_us"):         "50000",
		filepath.Join(podCgroupDir(pod, "cpu"), id, "cpu.shares"):               "512",
	} {
		if got := readTrim(t, file); got != want {
			t.Errorf("after update %s = %s, want %s", file, got, want)
		}
	}
	if st := d.ContainerStatus(t, id); st.GetResources().GetLinux().GetMemoryLimitInBytes() != 96<<20 {
		t.Errorf("ContainerStatus.resources = %v, want the updated limit", st.GetResources())
	}

	// A container that outgrows its limit is OOM-killed and says so.
	hog := framework.Sh("hog", "x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived")
	hog.Linux.Resources.MemoryLimitInBytes = 32 << 20
	st, out := runToExit(t, d, podID, pod, hog)
	if st.Reason != "OOMKilled" || strings.Contains(out, "survived") {
		t.Errorf("memory hog: reason %q exit %d output %q, want OOMKilled", st.Reason, st.ExitCode, out)
	}
}

func TestResourcesPidsLimit(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "pids")
	// As kubelet does for podPidsLimit: the pod's cgroup carries pids.max,
	// and every container of the pod sits below it.
	dir := podCgroupDir(pod, "pids")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("20"), 0o644); err != nil {
		t.Fatal(err)
	}
	podID := d.RunPod(t, pod)
	// ash exits when a fork fails, so the loop runs in a child shell that
	// reports each spawn with a builtin; the sleeps die with PID 1.
	cfg := framework.Sh("forker", `sh -c 'for i in $(seq 100); do sleep 100 & echo spawned $i; done'; echo inner-exit $?`)
	st, out := runToExit(t, d, podID, pod, cfg)
	n := 0
	for _, l := range strings.Split(out, "\n") {
		fmt.Sscanf(l, "spawned %d", &n)
	}
	if n == 0 || n >= 20 || strings.Contains(out, "inner-exit 0") {
		t.Errorf("fork bomb under pids.max 20: %d sleeps spawned, exit %d, output:\n%s", n, st.ExitCode, out)
	}
}

func TestSecuritySysctls(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "sysctl")
	pod.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "80"}
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("read", "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start")
	st, out := runToExit(t, d, podID, pod, cfg)
	if st.ExitCode != 0 || out != "1\n80" {
		t.Errorf("exit %d output %q, want 1 and 80", st.ExitCode, out)
	}
}

func TestSharedPIDNamespace(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "sharedpid")
	pod.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	podID := d.RunPod(t, pod)
	sleeper := framework.Sh("sleeper", "exec sleep 4242")
	sleeper.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	d.RunContainer(t, podID, pod, sleeper)
	cfg := framework.Sh("looker", "sleep 0.5; ps")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	_, out := runToExit(t, d, podID, pod, cfg)
	if !strings.Contains(out, "sleep 4242") {
		t.Errorf("a container of a shared-PID pod does not see its neighbour:\n%s", out)
	}
}

func TestSecurityPrivileged(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "priv")
	pod.Linux.SecurityContext.Privileged = true
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("priv", "grep CapBnd /proc/self/status; ls /dev/loop0 /dev/kmsg")
	secCtx(cfg).Privileged = true
	st, out := runToExit(t, d, podID, pod, cfg)
	if st.ExitCode != 0 {
		t.Fatalf("privileged container: exit %d output %q", st.ExitCode, out)
	}
	var mine string
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "CapBnd:") {
			mine = strings.TrimSpace(strings.TrimPrefix(l, "CapBnd:"))
		}
	}
	if !strings.Contains(out, mine) {
		t.Errorf("privileged bounding set is not the daemon's %s:\n%s", mine, out)
	}
}

// TestSecurityBadInput sends configs that must be refused with
// InvalidArgument, naming the problem, and leave nothing behind (the leak
// check after the test covers mounts, processes, runtime state, cgroups).
func TestSecurityBadInput(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "badsec")
	podID := d.RunPod(t, pod)
	cases := []struct {
		name, mention string
		mutate        func(*runtimeapi.ContainerConfig)
	}{
		{"missing seccomp profile", "no-such-profile.json", func(c *runtimeapi.ContainerConfig) {
			secCtx(c).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/nonexistent/no-such-profile.json"}
		}},
		{"negative memory", "memory_limit_in_bytes", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.MemoryLimitInBytes = -5 }},
		{"absurd cpu period", "cpu_period", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuPeriod = 10 }},
		{"unknown user name", "nobody-here", func(c *runtimeapi.ContainerConfig) { secCtx(c).RunAsUsername = "nobody-here" }},
		{"apparmor without apparmor", "apparmor", func(c *runtimeapi.ContainerConfig) {
			secCtx(c).Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "my-profile"}
		}},
		{"bidirectional on a private mount", "propagation", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: d.Dir, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
		}},
		{"image volume", "image", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", Image: &runtimeapi.ImageSpec{Image: "busybox"}}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "apparmor without apparmor" {
				if b, _ := os.ReadFile("/sys/module/apparmor/parameters/enabled"); strings.HasPrefix(string(b), "Y") {
					t.Skip("this host has AppArmor")
				}
			}
			cfg := framework.Sh("bad", "true")
			tc.mutate(cfg)
			framework.MakeLogDir(t, pod, cfg)
			_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
			wantCode(t, tc.name, err, codes.InvalidArgument)
			if err != nil && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.mention)) {
				t.Errorf("error %q does not name %q", err, tc.mention)
			}
			if ids := containerIDs(t, d, nil); len(ids) != 0 {
				t.Errorf("containers listed after a refused create: %v", ids)
			}
		})
	}
	t.Run("host sysctl", func(t *testing.T) {
		bad := d.PodConfig(t, "badsysctl")
		bad.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
		_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: bad})
		wantCode(t, "non-namespaced sysctl", err, codes.InvalidArgument)
		smuggle := d.PodConfig(t, "smuggle")
		smuggle.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/x"}
		_, err = d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: smuggle})
		wantCode(t, "sysctl value smuggling another (CVE-2022-0811)", err, codes.InvalidArgument)
	})
}
