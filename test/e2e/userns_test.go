package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// usernsHost is the first host id of the test pods' user namespace: a
// range kubelet could hand out (a multiple of 65536, above the host's users).
const usernsHost = 65536 * 40

func usernsOptions(mode runtimeapi.NamespaceMode, m ...*runtimeapi.IDMapping) *runtimeapi.UserNamespace {
	return &runtimeapi.UserNamespace{Mode: mode, Uids: m, Gids: m}
}

// TestUserNamespacePod: a pod with userns_options mode POD and kubelet's
// mappings runs as root inside and as an unprivileged host uid outside;
// its rootfs, volume and pod files keep their on-disk owners (idmapped
// mounts), its net.* sysctls apply, and what it writes to a host dir is
// owned there as the files it found were.
func TestUserNamespacePod(t *testing.T) {
	d := framework.Shared(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "from-host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := d.PodConfig(t, "userns")
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(runtimeapi.NamespaceMode_POD,
		&runtimeapi.IDMapping{ContainerId: 0, HostId: usernsHost, Length: 65536})
	pod.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "81"}
	podID := d.RunPod(t, pod)

	cfg := framework.Sh("inside", `id -u; id -g; cat /proc/self/uid_map
stat -c 'rootfs %u' /bin/sh
stat -c 'hosts %u' /etc/hosts
stat -c 'volume %u' /vol/from-host
echo hi > /vol/written && echo wrote
echo new > /created && stat -c 'created %u' /created
cat /proc/sys/net/ipv4/ip_unprivileged_port_start
echo ready; exec sleep 300`)
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", HostPath: vol}}
	d.RunContainer(t, podID, pod, cfg)
	lines := framework.WaitForLog(t, framework.LogPath(pod, cfg), "ready", 20*time.Second)
	var texts []string
	for _, l := range lines {
		texts = append(texts, strings.TrimSpace(l.Text))
	}
	out := strings.Join(texts, "\n")
	for _, want := range []string{
		"0\n0\n", "0 " + strconv.Itoa(usernsHost) + " 65536", "rootfs 0", "hosts 0", "volume 0", "wrote", "created 0", "81",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " ")+" ", strings.Join(strings.Fields(want), " ")) {
			t.Errorf("container output %q lacks %q", out, want)
		}
	}

	// From the host: the container's process runs as the mapped uid.
	pids := initPIDs(t, pod)
	if len(pids) != 1 {
		t.Fatalf("container init pids %v, want one", pids)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pids[0]), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Uid:" && f[1] != strconv.Itoa(usernsHost) {
			t.Errorf("container process %d on the host: %s, want uid %d", pids[0], l, usernsHost)
		}
	}
	// What it wrote to the host dir belongs to root there: the volume is idmapped.
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "written"), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("the file the container wrote: uid %d gid %d (%v), want 0 0 on the host", st.Uid, st.Gid, err)
	}
}

// TestUserNamespaceRefused: what kubelet would never send is refused with
// InvalidArgument naming the field; mode NODE is the host's namespace.
func TestUserNamespaceRefused(t *testing.T) {
	d := framework.Shared(t)
	m := func(c, h, l uint32) *runtimeapi.IDMapping {
		return &runtimeapi.IDMapping{ContainerId: c, HostId: h, Length: l}
	}
	for name, tc := range map[string]struct {
		u    *runtimeapi.UserNamespace
		want string
	}{
		"container id 1":  {usernsOptions(runtimeapi.NamespaceMode_POD, m(1, usernsHost, 65536)), "uids"},
		"two mappings":    {usernsOptions(runtimeapi.NamespaceMode_POD, m(0, usernsHost, 100), m(100, usernsHost+100, 100)), "exactly one"},
		"host root":       {usernsOptions(runtimeapi.NamespaceMode_POD, m(0, 0, 65536)), "host id 0"},
		"mode CONTAINER":  {usernsOptions(runtimeapi.NamespaceMode_CONTAINER), "CONTAINER"},
		"mode TARGET":     {usernsOptions(runtimeapi.NamespaceMode_TARGET), "TARGET"},
		"NODE with a map": {usernsOptions(runtimeapi.NamespaceMode_NODE, m(0, usernsHost, 65536)), "NODE"},
	} {
		pod := d.PodConfig(t, "userns-bad")
		pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = tc.u
		_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pod})
		wantCode(t, name, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "userns_options") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: error %q should name userns_options and %q", name, msg, tc.want)
		}
	}
	if ids := podIDs(t, d, nil); len(ids) != 0 {
		t.Errorf("pods left after refused RunPodSandbox: %v", ids)
	}

	// NODE: the host's user namespace.
	pod := d.PodConfig(t, "userns-node")
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(runtimeapi.NamespaceMode_NODE)
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("node", "cat /proc/self/uid_map")
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(runtimeapi.NamespaceMode_NODE)
	st, out := runToExit(t, d, podID, pod, cfg)
	if st.ExitCode != 0 || strings.Join(strings.Fields(out), " ") != "0 0 4294967295" {
		t.Errorf("mode NODE: exit %d, uid_map %q, want the host's", st.ExitCode, out)
	}
}

// TestUserNamespaceSharedPID: a pod in a user namespace that shares its
// PID namespace: its pause process runs in the user namespace too, and
// the container joins both.
func TestUserNamespaceSharedPID(t *testing.T) {
	d := framework.Shared(t)
	u := usernsOptions(runtimeapi.NamespaceMode_POD, &runtimeapi.IDMapping{ContainerId: 0, HostId: usernsHost + 65536, Length: 65536})
	pod := d.PodConfig(t, "userns-pid")
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
	pod.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("shared", "cat /proc/self/uid_map; cat /proc/1/cmdline; echo")
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	st, out := runToExit(t, d, podID, pod, cfg)
	if st.ExitCode != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "0 "+strconv.Itoa(usernsHost+65536)+" 65536 /pause") {
		t.Errorf("exit %d, output %q: want the pod's mapping and the pause process as pid 1", st.ExitCode, out)
	}
}
