package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// nobody is the unprivileged local user the hardening tests act as.
const nobody = 65534

// asNobody runs argv as uid and gid 65534 with no supplementary groups (and
// so no capabilities) and returns its combined output.
func asNobody(argv ...string) (string, error) {
	return asUser(nobody, argv...)
}

// asUser runs argv as uid and gid id, with no supplementary groups.
func asUser(id uint32, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// openDaemonDir makes the daemon's top dir readable by everyone for the
// test, as /var/lib and /run are. The daemon's top dir is not berthd's:
// it stands in for /run and /var/lib (the framework makes it 0711 so that
// <state_dir>-userns beside the state dir is reachable, as under /run).
func openDaemonDir(t *testing.T, d *framework.Daemon) {
	t.Helper()
	// Restored as it was: a shared daemon's later pods in user namespaces
	// still need to reach <state_dir>-userns.
	before := perm(t, d.Dir)
	if err := os.Chmod(d.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(d.Dir, before) })
}

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestHardeningStateDirsRootOnly: a local user cannot walk into a
// container's filesystem through berth's root or state dir (the class of
// containerd's CVE-2021-41103 and CVE-2024-25621), and an install whose
// dirs an older berthd made traversable is tightened at start.
func TestHardeningStateDirsRootOnly(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	openDaemonDir(t, d)
	pod := d.PodConfig(t, "secret")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("writer", "echo s3cret > /secret && chmod 0644 /secret && touch /ready && exec sleep 300")
	id := d.RunContainer(t, podID, pod, cfg)
	files := []string{
		filepath.Join(d.Root, "containers", id, "upper", "secret"),      // the writable layer
		filepath.Join(d.StateDir, "containers", id, "rootfs", "secret"), // the mounted rootfs
	}
	if err := framework.WaitFor(10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(d.Root, "containers", id, "upper", "ready"))
		return err == nil
	}); err != nil {
		t.Fatalf("the container did not write its file: %v", err)
	}
	check := func(t *testing.T) {
		t.Helper()
		for _, f := range files {
			if b, err := os.ReadFile(f); err != nil || strings.TrimSpace(string(b)) != "s3cret" {
				t.Fatalf("root reading %s: %q, %v (the control case must pass)", f, b, err)
			}
			if out, err := asNobody("/bin/cat", f); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d read a container's file %s: err %v, output %q", nobody, f, err, out)
			}
		}
		// Every dir berth makes on the way to container content is root-only.
		for _, dir := range []string{
			d.Root, d.StateDir,
			filepath.Join(d.Root, "containers"), filepath.Join(d.Root, "containers", id), filepath.Join(d.Root, "layers"),
			filepath.Join(d.StateDir, "containers"), filepath.Join(d.StateDir, "containers", id),
			filepath.Join(d.StateDir, "sandboxes"), filepath.Join(d.StateDir, "sandboxes", podID),
			filepath.Join(d.StateDir, "exits"),
		} {
			if m := perm(t, dir); m != 0o700 {
				t.Errorf("%s has mode %#o, want 0700", dir, m)
			}
		}
	}
	check(t)

	// An install made by an older berthd: traversable dirs. A restart
	// tightens them; the running container is unaffected.
	d.Stop(t)
	for _, dir := range []string{d.Root, d.StateDir, filepath.Join(d.Root, "containers"), filepath.Join(d.StateDir, "containers"),
		filepath.Join(d.StateDir, "sandboxes"), filepath.Join(d.Root, "layers"), filepath.Join(d.StateDir, "exits")} {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	d.Restart(t)
	for _, dir := range []string{d.Root, d.StateDir, filepath.Join(d.Root, "containers"), filepath.Join(d.StateDir, "containers"),
		filepath.Join(d.StateDir, "sandboxes"), filepath.Join(d.Root, "layers"), filepath.Join(d.StateDir, "exits")} {
		if m := perm(t, dir); m != 0o700 {
			t.Errorf("after restart %s has mode %#o, want 0700", dir, m)
		}
	}
	if st := d.ContainerStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container %s is %v after the restart, want running", id, st.State)
	}
	// The container's own view is unchanged: a non-root container user
	// still gets into "/" and reads the pod's files.
	user := framework.Sh("user", "ls / >/dev/null && cat /etc/resolv.conf /etc/hostname && echo ok")
	user.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	if st, out := runToExit(t, d, podID, pod, user); st.ExitCode != 0 || !strings.HasSuffix(out, "ok") {
		t.Errorf("a uid 1000 container: exit %d, output %q", st.ExitCode, out)
	}
}

// TestHardeningUserNSDirs: pods in user namespaces keep berth's state and
// root dirs root-only (their remapped root reaches only its own rootfs
// mount points, in <state_dir>-userns): neither uid 65534 nor the root of
// another pod in a user namespace can list or enter them, nor read a
// container's files, nor list the userns dir or enter a pod's entry.
// Removing the pod removes its entries.
func TestHardeningUserNSDirs(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	openDaemonDir(t, d)
	const rootA, rootB = usernsHost + 65536*4, usernsHost + 65536*5
	mapping := func(host uint32) *runtimeapi.UserNamespace {
		return usernsOptions(runtimeapi.NamespaceMode_POD, &runtimeapi.IDMapping{ContainerId: 0, HostId: host, Length: 65536})
	}
	run := func(name string, host uint32) (podID, id string) {
		pod := d.PodConfig(t, name)
		pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = mapping(host)
		// A shared PID namespace: the pause process's rootfs is there too.
		pod.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		podID = d.RunPod(t, pod)
		cfg := framework.Sh("writer", "echo s3cret > /secret && chmod 0644 /secret && touch /ready && exec sleep 300")
		cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = mapping(host)
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		id = d.RunContainer(t, podID, pod, cfg)
		return podID, id
	}
	podA, idA := run("userns-a", rootA)
	podB, idB := run("userns-b", rootB)
	usernsDir := d.StateDir + "-userns"
	rootfsA := filepath.Join(usernsDir, idA, "rootfs")
	if err := framework.WaitFor(10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(rootfsA, "ready"))
		return err == nil
	}); err != nil {
		t.Fatalf("the container did not write its file: %v", err)
	}
	files := []string{
		filepath.Join(d.Root, "containers", idA, "upper", "secret"), // the writable layer
		filepath.Join(rootfsA, "secret"),                            // the mounted rootfs
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err != nil || strings.TrimSpace(string(b)) != "s3cret" {
			t.Fatalf("root reading %s: %q, %v (the control case must pass)", f, b, err)
		}
	}
	// Pod A's own root reaches its rootfs: what runc needs, and the
	// control for the refusals below.
	if out, err := asUser(rootA, "/bin/cat", files[1]); err != nil || strings.TrimSpace(out) != "s3cret" {
		t.Errorf("pod A's root reading its own rootfs %s: %v, %q", files[1], err, out)
	}
	for _, who := range []uint32{nobody, rootB} {
		for _, f := range files {
			if out, err := asUser(who, "/bin/cat", f); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d read a container's file %s: err %v, output %q", who, f, err, out)
			}
		}
		// Neither listed nor entered.
		for _, dir := range []string{
			d.Root, d.StateDir, filepath.Join(d.StateDir, "containers"), filepath.Join(d.StateDir, "sandboxes"),
			filepath.Join(d.StateDir, "containers", idA), filepath.Join(d.StateDir, "sandboxes", podA),
			filepath.Join(usernsDir, idA), filepath.Join(usernsDir, podA),
		} {
			if out, err := asUser(who, "/bin/ls", dir); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d listed %s: err %v, output %q", who, dir, err, out)
			}
			if out, err := asUser(who, "/bin/sh", "-c", "cd "+dir); err == nil {
				t.Errorf("uid %d entered %s: output %q", who, dir, out)
			}
		}
		// The userns dir is searchable, never listable.
		if out, err := asUser(who, "/bin/ls", usernsDir); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %d listed %s: err %v, output %q", who, usernsDir, err, out)
		}
	}
	for _, dir := range []string{
		d.Root, d.StateDir, filepath.Join(d.StateDir, "containers"), filepath.Join(d.StateDir, "sandboxes"),
		filepath.Join(d.StateDir, "containers", idA), filepath.Join(d.StateDir, "sandboxes", podA),
	} {
		if m := perm(t, dir); m != 0o700 {
			t.Errorf("%s has mode %#o with pods in user namespaces running, want 0700", dir, m)
		}
	}
	if m := perm(t, usernsDir); m != 0o711 {
		t.Errorf("%s has mode %#o, want 0711", usernsDir, m)
	}
	for _, id := range []string{idA, podA} {
		fi, err := os.Stat(filepath.Join(usernsDir, id))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o710 || st.Uid != 0 || st.Gid != rootA {
			t.Errorf("%s: %v %d:%d, want 0710 root:%d", filepath.Join(usernsDir, id), fi.Mode(), st.Uid, st.Gid, rootA)
		}
	}

	// Removing a pod removes its entries; the other pod's stay.
	for _, id := range []string{podA} {
		if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{idA, podA} {
		if _, err := os.Lstat(filepath.Join(usernsDir, id)); !os.IsNotExist(err) {
			t.Errorf("%s after RemovePodSandbox: %v, want it gone", filepath.Join(usernsDir, id), err)
		}
	}
	for _, id := range []string{idB, podB} {
		if _, err := os.Lstat(filepath.Join(usernsDir, id)); err != nil {
			t.Errorf("pod B's %s: %v", id, err)
		}
	}

	// A leftover entry (a crash between steps) goes at the next start;
	// a loosened userns dir is tightened.
	d.Stop(t)
	stray := filepath.Join(usernsDir, strings.Repeat("ab", 32))
	if err := os.MkdirAll(filepath.Join(stray, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(usernsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.Restart(t)
	if _, err := os.Lstat(stray); !os.IsNotExist(err) {
		t.Errorf("leftover %s after a restart: %v, want it removed", stray, err)
	}
	if m := perm(t, usernsDir); m != 0o711 {
		t.Errorf("after restart %s has mode %#o, want 0711", usernsDir, m)
	}
	if st := d.ContainerStatus(t, idB); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("pod B's container is %v after the restart, want running", st.State)
	}
}

// TestHardeningSocketRefusesNonRoot: only root may talk to berthd.
func TestHardeningSocketRefusesNonRoot(t *testing.T) {
	d := framework.Shared(t)
	openDaemonDir(t, d)
	// A copy of the CLI that uid 65534 can run (the built one sits in a
	// 0700 temp dir).
	cli := filepath.Join(d.Dir, "berth-cli-copy")
	copyFile(t, framework.BerthBinary(t), cli, 0o755)
	t.Cleanup(func() { os.Remove(cli) })
	if fi, err := os.Stat(d.Socket); err != nil || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Sys().(*syscall.Stat_t).Gid != 0 {
		t.Errorf("socket %s: %v, %v; want 0660 root:root", d.Socket, fi.Mode(), err)
	}
	if out, err := exec.Command(cli, "--socket", "unix://"+d.Socket, "version").CombinedOutput(); err != nil {
		t.Fatalf("root: berth version: %v\n%s (the control case must pass)", err, out)
	}
	out, err := asNobody(cli, "--socket", "unix://"+d.Socket, "version")
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("uid %d talked to berthd: err %v, output %q", nobody, err, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHardeningHostilePasswd: an image whose /etc/passwd is a FIFO used to
// block CreateContainer for ever, holding the name and a mounted rootfs.
// Now the create fails at once and undoes itself (the leak check after the
// test covers mounts, processes and runtime state).
func TestHardeningHostilePasswd(t *testing.T) {
	d := framework.Shared(t)
	const ref = "berth.test/fifo-passwd:1"
	d.ImportImage(t, testimage.TempTar(t, ref, false, testimage.Options{
		Layers: []testimage.Layer{{Fifos: []string{"/etc/passwd"}}},
		User:   "user",
	}))
	t.Cleanup(func() {
		_, _ = d.Image.RemoveImage(framework.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	})
	pod := d.PodConfig(t, "fifo")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("fifo", "true")
	cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref}
	framework.MakeLogDir(t, pod, cfg)
	// Twice: the first failure must have released the name.
	for i := range 2 {
		start := time.Now()
		_, err := d.Runtime.CreateContainer(framework.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("attempt %d: CreateContainer took %v", i, took)
		}
		wantCode(t, "CreateContainer with a FIFO /etc/passwd", err, codes.InvalidArgument)
		if err != nil && !strings.Contains(err.Error(), "/etc/passwd is a FIFO") {
			t.Errorf("error %q does not say /etc/passwd is a FIFO", err)
		}
	}
	if ids := containerIDs(t, d, nil); len(ids) != 0 {
		t.Errorf("containers listed after a refused create: %v", ids)
	}
}

// bundleSpec reads the OCI spec berth wrote for container id.
func bundleSpec(t *testing.T, d *framework.Daemon, id string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.StateDir, "containers", id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestHardeningAnnotationAllowList: annotations reach the OCI spec only
// when the handler's allow-list names them (CVE-2024-3154 came from
// org.systemd.property.* reaching runc); berth's own are always there and
// cannot be forged.
func TestHardeningAnnotationAllowList(t *testing.T) {
	hostile := map[string]string{
		"org.systemd.property.ExecStartPre": "/bin/sh -c 'touch /pwned'",
		"run.oci.keep_original_groups":      "1",
		"io.kubernetes.cri.sandbox-id":      "forged",
	}
	run := func(t *testing.T, d *framework.Daemon) (podID string, spec *specs.Spec) {
		t.Helper()
		pod := d.PodConfig(t, "annotated")
		pod.Annotations["example.com/pod-note"] = "from the pod"
		for k, v := range hostile {
			pod.Annotations[k] = v
		}
		podID = d.RunPod(t, pod)
		cfg := framework.Sh("annotated", "true")
		cfg.Annotations["example.com/allowed-note"] = "from the container"
		cfg.Annotations["example.com/other"] = "not listed"
		for k, v := range hostile {
			cfg.Annotations[k] = v
		}
		id := d.CreateContainer(t, podID, pod, cfg)
		// ContainerStatus still reports every annotation: kubelet reads
		// its own back from there.
		if got := d.ContainerStatus(t, id).Annotations["run.oci.keep_original_groups"]; got != "1" {
			t.Errorf("ContainerStatus lost an annotation of the request: %q", got)
		}
		return podID, bundleSpec(t, d, id)
	}
	checkHostile := func(t *testing.T, podID string, a map[string]string) {
		t.Helper()
		for _, k := range []string{"org.systemd.property.ExecStartPre", "run.oci.keep_original_groups", "example.com/other"} {
			if v, ok := a[k]; ok {
				t.Errorf("annotation %s=%q reached the OCI spec", k, v)
			}
		}
		if a["io.kubernetes.cri.sandbox-id"] != podID || a["io.kubernetes.cri.container-type"] != "container" {
			t.Errorf("berth's own annotations are wrong: %v", a)
		}
	}
	t.Run("default", func(t *testing.T) {
		d := framework.Shared(t)
		podID, spec := run(t, d)
		checkHostile(t, podID, spec.Annotations)
		for _, k := range []string{"example.com/pod-note", "example.com/allowed-note", "io.kubernetes.container.restartCount"} {
			if v, ok := spec.Annotations[k]; ok {
				t.Errorf("with no allow-list, %s=%q reached the OCI spec", k, v)
			}
		}
	})
	t.Run("allow-listed", func(t *testing.T) {
		d := framework.StartDaemon(t, framework.Options{Config: `
[runtimes.runc]
pod_annotations = ["example.com/pod-*"]
container_annotations = ["example.com/allowed-*", "io.kubernetes.container.*"]
`})
		podID, spec := run(t, d)
		checkHostile(t, podID, spec.Annotations)
		for k, want := range map[string]string{
			"example.com/pod-note":                 "from the pod",
			"example.com/allowed-note":             "from the container",
			"io.kubernetes.container.restartCount": "0",
		} {
			if got := spec.Annotations[k]; got != want {
				t.Errorf("allowed annotation %s = %q in the OCI spec, want %q", k, got, want)
			}
		}
	})
}

// TestHardeningLargeMessages: kubelet sends and accepts CRI messages up to
// 16 MiB; gRPC's default limit of 4 MiB refused them.
func TestHardeningLargeMessages(t *testing.T) {
	d := framework.Shared(t)
	// A 5 MiB request gets past the size check to the reference parser.
	_, err := d.Image.ImageStatus(framework.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "berth.test/" + strings.Repeat("a", 5<<20)}})
	if status.Code(err) == codes.ResourceExhausted {
		t.Errorf("a 5 MiB ImageStatus request was refused for its size: %v", err)
	}
	// ExecSync: stdout and stderr together stay within one 16 MiB response.
	pod := d.PodConfig(t, "bigexec")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("idle", "exec sleep 300"))
	resp, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Timeout: 30,
		Cmd: []string{"sh", "-c", "head -c 10m /dev/zero; head -c 10m /dev/zero >&2; echo done >&2"}})
	if err != nil {
		t.Fatalf("ExecSync with 20 MiB of output: %v", err)
	}
	if n := len(resp.Stdout) + len(resp.Stderr); n > 16<<20 || n < 15<<20 {
		t.Errorf("ExecSync kept %d+%d bytes, want just under 16 MiB in all", len(resp.Stdout), len(resp.Stderr))
	}
	if resp.ExitCode != 0 {
		t.Errorf("exit code %d", resp.ExitCode)
	}
}

// TestHardeningPodFilesBounded: /etc/hosts, /etc/resolv.conf and
// /etc/hostname stay writable, as with containerd and CRI-O, but a
// container can no longer fill the host's /run through them.
func TestHardeningPodFilesBounded(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "podfiles")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("filler", `echo "10.1.2.3 extra" >> /etc/hosts && echo appended
head -c 8m /dev/zero >> /etc/resolv.conf; echo rc=$?
grep -c extra /etc/hosts`)
	st, out := runToExit(t, d, podID, pod, cfg)
	if !strings.Contains(out, "appended") || !strings.HasSuffix(out, "\n1") {
		t.Errorf("a small write to /etc/hosts failed: exit %d, output %q", st.ExitCode, out)
	}
	if !strings.Contains(out, "rc=") || strings.Contains(out, "rc=0") {
		t.Errorf("8 MiB written to /etc/resolv.conf: output %q, want the write to fail (ENOSPC)", out)
	}
	// On the host: what berth wrote plus at most about 1 MiB.
	resolv := filepath.Join(d.StateDir, "sandboxes", podID, "files", "resolv.conf")
	if fi, err := os.Stat(resolv); err != nil || fi.Size() > 1<<20+64<<10 {
		t.Errorf("pod resolv.conf on the host: %v; want at most about 1 MiB", err)
		if err == nil {
			t.Errorf("it holds %d bytes", fi.Size())
		}
	}
}

// TestHardeningNoDeviceNodes: a root process in a container cannot make a
// device node by default (no CAP_MKNOD, as CRI-O), and one made with
// CAP_MKNOD added cannot be opened through the rootfs (mounted nodev): a
// host user reaching the rootfs through /proc/<pid>/root would otherwise
// open the host's disk without the container's device cgroup.
func TestHardeningNoDeviceNodes(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "mknod")
	podID := d.RunPod(t, pod)
	st, out := runToExit(t, d, podID, pod, framework.Sh("default", `mknod /tmp/null c 1 3 && echo made; true`))
	if strings.Contains(out, "made") {
		t.Errorf("mknod succeeded with the default capabilities (exit %d): %q", st.ExitCode, out)
	}
	cfg := framework.Sh("withmknod", `mknod /tmp/null c 1 3 && echo made; echo x > /tmp/null && echo opened; true`)
	cfg.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"MKNOD"}}
	st, out = runToExit(t, d, podID, pod, cfg)
	if !strings.Contains(out, "made") || strings.Contains(out, "opened") {
		t.Errorf("with CAP_MKNOD: exit %d, output %q; want the node made but not openable (nodev rootfs)", st.ExitCode, out)
	}
}
