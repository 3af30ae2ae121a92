package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	// berthhost, not host: the tests below name their HostConfig host.
	berthhost "github.com/berth-project/berth/internal/host"
)

// runcEnv is a busybox rootfs and a pod's pinned namespaces, made the
// way the sandbox package makes them, for running generated specs with the
// real runc.
type runcEnv struct {
	runc, root, rootfs, pod string
	ns                      SandboxNamespaces
}

func newRuncEnv(t *testing.T) *runcEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	dir := t.TempDir()
	e := &runcEnv{runc: runc, root: filepath.Join(dir, "runc"), rootfs: filepath.Join(dir, "rootfs"), pod: filepath.Join(dir, "pod")}
	for _, d := range []string{"bin", "etc", "data", "home/app"} {
		if err := os.MkdirAll(filepath.Join(e.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.rootfs, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "id", "cat", "grep", "hostname", "touch", "head", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(e.rootfs, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"rootfs/etc/passwd":   "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n",
		"rootfs/etc/group":    "root:x:0:\napp:x:1001:\nwheel:x:10:app\n",
		"pod/hostname":        "ticker-vm\n",
		"pod/hosts":           "127.0.0.1 localhost\n",
		"pod/resolv.conf":     "nameserver 127.0.0.53\n",
		"pod/volume/f":        "volume-data\n",
		"pod/ns/net":          "",
		"pod/ns/ipc":          "",
		"pod/ns/uts":          "",
		"pod/shm/.keep":       "",
		"pod/seccomp/ok.json": `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.ns = SandboxNamespaces{Net: filepath.Join(e.pod, "ns/net"), IPC: filepath.Join(e.pod, "ns/ipc"), UTS: filepath.Join(e.pod, "ns/uts")}
	out, err := exec.Command("unshare", "--net="+e.ns.Net, "--ipc="+e.ns.IPC, "--uts="+e.ns.UTS, "hostname", "ticker-vm").CombinedOutput()
	if err != nil {
		t.Fatalf("pin namespaces: %v: %s", err, out)
	}
	t.Cleanup(func() {
		for _, p := range []string{e.ns.Net, e.ns.IPC, e.ns.UTS} {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", p, err)
			}
		}
	})
	return e
}

// run writes s into a bundle and runs it in the foreground with runc,
// returning stdout; the container is deleted afterwards.
func (e *runcEnv) run(t *testing.T, id string, s *specs.Spec) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() {
		// runc run deletes the container itself; this catches a timeout.
		_ = exec.Command(e.runc, "--root", e.root, "delete", "-f", id).Run()
	})
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.runc, "--root", e.root, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Do not wait forever on a pipe a stray container process still holds.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestGeneratedSpecsRunWithRunc(t *testing.T) {
	e := newRuncEnv(t)
	mask, err := berthhost.BoundingCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	all := CapsFromMask(mask)
	host := HostConfig{AllCapabilities: all, NodeHostname: "node1"}
	// Like berthd on these hosts: no CAP_SYS_RESOURCE, so scores below our
	// own are clamped (kubelet asks -998 for the sandbox).
	if !slices.Contains(all, "CAP_SYS_RESOURCE") {
		min, err := berthhost.OOMScoreAdj()
		if err != nil {
			t.Fatal(err)
		}
		host.OOMScoreAdjMin = &min
	}
	id := fmt.Sprintf("berth-spec-%d", time.Now().UnixNano())
	parent := "berth-spec-test-" + id
	cgroup := "/" + parent + "/" + id
	t.Cleanup(func() {
		// runc removes each container's cgroup, not the parent it created.
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", parent))
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", parent))
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	})

	t.Run("restricted container", func(t *testing.T) {
		in := kubeletContainer()
		in.ID = id
		in.RootfsPath = e.rootfs
		in.Namespaces = e.ns
		in.Host = host
		in.HostnamePath = filepath.Join(e.pod, "hostname")
		in.HostsPath = filepath.Join(e.pod, "hosts")
		in.ResolvPath = filepath.Join(e.pod, "resolv.conf")
		in.ShmPath = filepath.Join(e.pod, "shm")
		in.CgroupsPath = cgroup
		in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: filepath.Join(e.pod, "volume"), Readonly: true}}
		in.Config.Command = []string{"sh", "-c", strings.Join([]string{
			"id -u", "id -G", "hostname",
			"grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status",
			"touch /x 2>/dev/null || echo rootfs-ro",
			"touch /data/x 2>/dev/null || echo volume-ro",
			"cat /data/f",
			"head -c1 /proc/kcore 2>/dev/null | grep -q . && echo kcore-visible || echo kcore-masked",
		}, "; ")}
		sc := in.Config.Linux.SecurityContext
		sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
		sc.ReadonlyRootfs = true
		sc.NoNewPrivs = true
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		out := e.run(t, id, s)
		for _, want := range []string{
			"1000\n", "1001 10\n", "ticker-vm\n",
			"CapBnd:\t0000000000000400", "Seccomp:\t2", "NoNewPrivs:\t1",
			"rootfs-ro", "volume-ro", "volume-data", "kcore-masked",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("localhost seccomp profile", func(t *testing.T) {
		in := kubeletContainer()
		in.ID = id + "-l"
		in.RootfsPath = e.rootfs
		in.Namespaces = e.ns
		in.Host = host
		in.CgroupsPath = cgroup + "-l"
		in.HostnamePath, in.HostsPath, in.ResolvPath, in.ShmPath = "", "", "", ""
		in.Config.Mounts = nil
		in.Config.Command = []string{"sh", "-c", "hostname other 2>/dev/null && echo renamed || echo blocked"}
		in.Config.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
		in.Config.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{
			ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: filepath.Join(e.pod, "seccomp/ok.json"),
		}
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if out := e.run(t, in.ID, s); !strings.Contains(out, "blocked") {
			t.Fatalf("sethostname was not blocked by the profile: %s", out)
		}
	})

	t.Run("pause sandbox", func(t *testing.T) {
		in := &SandboxInput{
			ID:          id + "-p",
			Pod:         ValidatedPod(kubeletSandbox()),
			RootfsPath:  e.rootfs,
			Args:        []string{"/bin/sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; echo $$"},
			Namespaces:  e.ns,
			CgroupsPath: cgroup + "-p",
			Host:        host,
		}
		s, err := GenerateSandbox(in)
		if err != nil {
			t.Fatal(err)
		}
		out := e.run(t, in.ID, s)
		for _, want := range []string{"65535\n", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2", "\n1\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}
