package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

func TestContainerExitCodeAndLogs(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "exit")
	podID := d.RunPod(t, pod)

	before := time.Now()
	cfg := framework.Sh("fail", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3")
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)

	if st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("exit code %d reason %q, want 3 Error", st.ExitCode, st.Reason)
	}
	created, started, finished := time.Unix(0, st.CreatedAt), time.Unix(0, st.StartedAt), time.Unix(0, st.FinishedAt)
	if created.Before(before.Add(-time.Second)) || started.Before(created) || finished.Before(started) || finished.After(time.Now().Add(time.Second)) {
		t.Errorf("times out of order: created %v started %v finished %v (test began %v)", created, started, finished, before)
	}
	if st.GetImage().GetImage() == "" || st.ImageRef == "" {
		t.Errorf("image %q image_ref %q: want both set", st.GetImage().GetImage(), st.ImageRef)
	}
	if st.ImageId != "" && st.ImageId != d.BusyboxID {
		t.Errorf("image_id %q, want the imported image id %q", st.ImageId, d.BusyboxID)
	}
	if st.ImageRef != d.BusyboxID && !strings.Contains(st.ImageRef, "@sha256:") {
		t.Errorf("image_ref %q is neither the image id %q nor a repo digest", st.ImageRef, d.BusyboxID)
	}
	logPath := framework.LogPath(pod, cfg)
	if st.LogPath != logPath {
		t.Errorf("log_path %q, want %q", st.LogPath, logPath)
	}
	if st.GetMetadata().GetName() != "fail" {
		t.Errorf("metadata %v", st.GetMetadata())
	}

	var stdout, stderr []string
	for _, l := range framework.ReadLog(t, logPath) {
		if l.Tag != "F" {
			t.Errorf("line %q has tag %s, want F", l.Text, l.Tag)
		}
		if l.Stream == "stdout" {
			stdout = append(stdout, l.Text)
		} else {
			stderr = append(stderr, l.Text)
		}
	}
	if !slices.Equal(stdout, []string{"out1", "out2"}) || !slices.Equal(stderr, []string{"err1", "err2"}) {
		t.Errorf("stdout %q stderr %q, want [out1 out2] [err1 err2]", stdout, stderr)
	}

	ok := d.RunContainer(t, podID, pod, framework.Sh("ok", "echo fine"))
	st = d.WaitForState(t, ok, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	if st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("exit code %d reason %q, want 0 Completed", st.ExitCode, st.Reason)
	}
}

func TestStopContainer(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "stop")
	podID := d.RunPod(t, pod)

	t.Run("ignores SIGTERM", func(t *testing.T) {
		cfg := framework.Sh("stubborn", "trap '' TERM; echo ready; while true; do sleep 1; done")
		id := d.RunContainer(t, podID, pod, cfg)
		framework.WaitForLog(t, framework.LogPath(pod, cfg), "ready", 10*time.Second)
		start := time.Now()
		if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if took < 1800*time.Millisecond || took > 6*time.Second {
			t.Errorf("StopContainer with timeout 2 took %v, want about 2s", took)
		}
		st := d.ContainerStatus(t, id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
			t.Errorf("after stop: state %v exit %d, want EXITED 137", st.State, st.ExitCode)
		}
		// Stopping again is a no-op.
		if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
			t.Errorf("second StopContainer: %v", err)
		}
	})

	t.Run("exits on SIGTERM", func(t *testing.T) {
		cfg := framework.Sh("polite", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 1 & wait $!; done")
		id := d.RunContainer(t, podID, pod, cfg)
		framework.WaitForLog(t, framework.LogPath(pod, cfg), "ready", 10*time.Second)
		start := time.Now()
		if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("StopContainer of a container that exits on TERM took %v", took)
		}
		st := d.ContainerStatus(t, id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 || st.Reason != "Completed" {
			t.Errorf("after stop: state %v exit %d reason %q, want EXITED 0 Completed", st.State, st.ExitCode, st.Reason)
		}
		if st.StopSignal != runtimeapi.Signal_SIGNAL_SIGTERM {
			t.Errorf("stop_signal %v, want SIGTERM (neither config nor image names one)", st.StopSignal)
		}
	})

	t.Run("image stop signal", func(t *testing.T) {
		ref := "berth.test/stopsignal:1"
		d.ImportImage(t, testimage.TempTar(t, ref, false, testimage.Options{StopSignal: "SIGUSR1"}))
		cfg := framework.Sh("usr1", "trap 'echo got-usr1; exit 5' USR1; trap '' TERM; echo ready; while true; do sleep 1 & wait $!; done")
		cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref}
		id := d.RunContainer(t, podID, pod, cfg)
		framework.WaitForLog(t, framework.LogPath(pod, cfg), "ready", 10*time.Second)
		if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
			t.Fatal(err)
		}
		st := d.ContainerStatus(t, id)
		if st.ExitCode != 5 {
			t.Errorf("exit code %d, want 5 (the image's StopSignal SIGUSR1 should have been sent)", st.ExitCode)
		}
		if st.StopSignal != runtimeapi.Signal_SIGNAL_SIGUSR1 {
			t.Errorf("stop_signal %v, want the image's SIGUSR1", st.StopSignal)
		}
	})

	t.Run("config stop signal over the image's", func(t *testing.T) {
		ref := "berth.test/stopsignal:2"
		d.ImportImage(t, testimage.TempTar(t, ref, false, testimage.Options{StopSignal: "SIGUSR1"}))
		cfg := framework.Sh("usr2", "trap 'exit 5' USR1; trap 'echo got-usr2; exit 6' USR2; trap '' TERM; echo ready; while true; do sleep 1 & wait $!; done")
		cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref}
		cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR2
		id := d.RunContainer(t, podID, pod, cfg)
		if st := d.ContainerStatus(t, id); st.StopSignal != runtimeapi.Signal_SIGNAL_SIGUSR2 {
			t.Errorf("running: stop_signal %v, want the config's SIGUSR2", st.StopSignal)
		}
		framework.WaitForLog(t, framework.LogPath(pod, cfg), "ready", 10*time.Second)
		if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
			t.Fatal(err)
		}
		if st := d.ContainerStatus(t, id); st.ExitCode != 6 || st.StopSignal != runtimeapi.Signal_SIGNAL_SIGUSR2 {
			t.Errorf("exit code %d stop_signal %v, want 6 and SIGUSR2 (the config's stop_signal should have been sent)", st.ExitCode, st.StopSignal)
		}
	})
}

// TestConfigMerge checks command, args, env, working dir and user against
// the image's Entrypoint, Cmd, Env, WorkingDir and User, as containerd merges them.
func TestConfigMerge(t *testing.T) {
	d := framework.Shared(t)
	ref := "berth.test/merge:1"
	ids := d.ImportImage(t, testimage.TempTar(t, ref, false, testimage.Options{
		Layers: []testimage.Layer{{
			Files: map[string]string{"/usr/local/bin/show": `#!/bin/sh
echo "args=$*"
echo "pwd=$(pwd)"
echo "A=$A"
echo "B=$B"
echo "PATH=$PATH"
echo "id=$(id)"
`},
			Modes: map[string]os.FileMode{"/usr/local/bin/show": 0o755},
			Dirs:  []string{"/data"},
		}},
		Entrypoint: []string{"/usr/local/bin/show"},
		Cmd:        []string{"img1", "img2"},
		Env:        []string{"A=img-a", "B=img-b"},
		WorkingDir: "/data",
		User:       "user",
	}))
	if len(ids) != 1 {
		t.Fatalf("import: ids %q", ids)
	}
	pod := d.PodConfig(t, "merge")
	podID := d.RunPod(t, pod)

	root := int64(0)
	cases := []struct {
		name    string
		command []string
		args    []string
		env     map[string]string
		workdir string
		image   string
		runAs   *int64
		want    map[string]string
	}{
		{name: "image-defaults", want: map[string]string{"args": "img1 img2", "pwd": "/data", "A": "img-a", "B": "img-b", "PATH": strings.TrimPrefix(testimage.DefaultPath, "PATH=")}},
		{name: "by-image-id", image: ids[0], want: map[string]string{"args": "img1 img2"}},
		{name: "args-replace-cmd", args: []string{"x", "y"}, want: map[string]string{"args": "x y"}},
		{name: "command-drops-cmd", command: []string{"/usr/local/bin/show", "c1"}, want: map[string]string{"args": "c1"}},
		{name: "command-and-args", command: []string{"/usr/local/bin/show", "c1"}, args: []string{"a1"}, want: map[string]string{"args": "c1 a1"}},
		{name: "env-and-workdir", env: map[string]string{"A": "ctr-a", "C": "c"}, workdir: "/tmp", want: map[string]string{"A": "ctr-a", "B": "img-b", "pwd": "/tmp"}},
		{name: "run-as-root", runAs: &root},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := framework.ContainerConfig(tc.name, tc.command...)
			cfg.Args = tc.args
			cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref}
			if tc.image != "" {
				cfg.Image.Image = tc.image
			}
			for k, v := range tc.env {
				cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(v)})
			}
			cfg.WorkingDir = tc.workdir
			if tc.runAs != nil {
				cfg.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: *tc.runAs}
			}
			id := d.RunContainer(t, podID, pod, cfg)
			st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
			texts := framework.LogTexts(t, framework.LogPath(pod, cfg))
			got := keyValues(texts)
			if st.ExitCode != 0 {
				t.Fatalf("exit code %d; log %q", st.ExitCode, texts)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (log %q)", k, got[k], v, texts)
				}
			}
			id2 := got["id"]
			switch {
			case tc.runAs != nil:
				if !strings.HasPrefix(id2, "uid=0(root)") {
					t.Errorf("id %q, want uid 0 (RunAsUser)", id2)
				}
			default:
				// The image's User "user" resolves through the image's
				// /etc/passwd, with the supplementary groups of /etc/group.
				if !strings.HasPrefix(id2, "uid=1000(user) gid=1000(user)") || !strings.Contains(id2, "2000(extra)") {
					t.Errorf("id %q, want uid=1000(user) gid=1000(user) with group 2000(extra)", id2)
				}
			}
		})
	}
}

func TestBindMounts(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "mounts")
	podID := d.RunPod(t, pod)
	roDir, rwDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(roDir, "in"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := framework.Sh("mounts", "cat /ro/in; if echo x > /ro/f; then echo ro-writable; else echo ro-denied; fi; echo hello > /rw/out && echo rw-ok")
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/ro", HostPath: roDir, Readonly: true},
		{ContainerPath: "/rw", HostPath: rwDir},
	}
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	texts := framework.LogTexts(t, framework.LogPath(pod, cfg))
	for _, want := range []string{"from-host", "ro-denied", "rw-ok"} {
		if !slices.Contains(texts, want) {
			t.Errorf("log %q lacks %q", texts, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(rwDir, "out")); string(data) != "hello\n" {
		t.Errorf("host sees %q in the rw mount, want hello", data)
	}
	if _, err := os.Stat(filepath.Join(roDir, "f")); err == nil {
		t.Errorf("a file was written through the readonly mount")
	}
	got := map[string]bool{}
	for _, m := range st.Mounts {
		got[m.ContainerPath] = m.Readonly
	}
	if ro, ok := got["/ro"]; !ok || !ro {
		t.Errorf("status mounts %v: want /ro readonly", st.Mounts)
	}
	if ro, ok := got["/rw"]; !ok || ro {
		t.Errorf("status mounts %v: want /rw read-write", st.Mounts)
	}
}

func TestLabelsAndAnnotations(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "labels")
	pod.Labels["e2e/pod-label"] = "pl"
	pod.Annotations["e2e/pod-annotation"] = "pa"
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("labels", "sleep 1000")
	cfg.Labels["e2e/label"] = "l1"
	cfg.Annotations["e2e/annotation"] = "a1"
	id := d.CreateContainer(t, podID, pod, cfg)

	ps := d.PodStatus(t, podID)
	if ps.Labels["e2e/pod-label"] != "pl" || ps.Annotations["e2e/pod-annotation"] != "pa" {
		t.Errorf("pod status labels %v annotations %v", ps.Labels, ps.Annotations)
	}
	if ps.GetMetadata().GetUid() != pod.Metadata.Uid || ps.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod status metadata %v state %v", ps.Metadata, ps.State)
	}
	pods, err := d.Runtime.ListPodSandbox(framework.Ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: podID}})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("ListPodSandbox: %v %v", pods, err)
	}
	if p := pods.Items[0]; p.Labels["e2e/pod-label"] != "pl" || p.Annotations["e2e/pod-annotation"] != "pa" {
		t.Errorf("listed pod labels %v annotations %v", p.Labels, p.Annotations)
	}
	st := d.ContainerStatus(t, id)
	if st.Labels["e2e/label"] != "l1" || st.Annotations["e2e/annotation"] != "a1" {
		t.Errorf("container status labels %v annotations %v", st.Labels, st.Annotations)
	}
	if st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("state %v, want CREATED", st.State)
	}
	ctrs, err := d.Runtime.ListContainers(framework.Ctx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil || len(ctrs.Containers) != 1 {
		t.Fatalf("ListContainers: %v %v", ctrs, err)
	}
	if c := ctrs.Containers[0]; c.Labels["e2e/label"] != "l1" || c.Annotations["e2e/annotation"] != "a1" || c.PodSandboxId != podID || c.ImageRef == "" {
		t.Errorf("listed container %v", c)
	}
}

func TestReopenContainerLog(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "reopen")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("ticker", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done")
	id := d.RunContainer(t, podID, pod, cfg)
	logPath := framework.LogPath(pod, cfg)
	framework.WaitForLog(t, logPath, "line2", 10*time.Second)

	// kubelet rotates by renaming, then asks for a reopen.
	rotated := logPath + ".20240101-000000"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.ReopenContainerLog(framework.Ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	lines := framework.WaitForLog(t, logPath, "line", 10*time.Second)
	old := framework.ReadLog(t, rotated)
	if len(old) == 0 || len(lines) == 0 {
		t.Fatalf("old log %d lines, new log %d lines", len(old), len(lines))
	}
	if !lines[0].Time.After(old[len(old)-1].Time) && !lines[0].Time.Equal(old[len(old)-1].Time) {
		t.Errorf("new log starts at %v, before the old one ends at %v", lines[0].Time, old[len(old)-1].Time)
	}
	// The rotated file stops growing once the reopen returned.
	n := len(framework.ReadLog(t, rotated))
	time.Sleep(300 * time.Millisecond)
	if m := len(framework.ReadLog(t, rotated)); m != n {
		t.Errorf("rotated log grew from %d to %d lines after ReopenContainerLog", n, m)
	}
}

func TestUpdateContainerResources(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "update")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("sleeper", "sleep 1000"))
	d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)

	const limit = 64 << 20
	_, err := d.Runtime.UpdateContainerResources(framework.Ctx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id,
		Linux:       &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: limit, CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512},
	})
	if err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	procs := podProcs(t, pod)
	if len(procs) != 1 {
		t.Fatalf("want one container cgroup with processes below %s, got %v", pod.Linux.CgroupParent, procs)
	}
	for dir := range procs {
		data, err := os.ReadFile(filepath.Join(dir, "memory.limit_in_bytes"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(data)); got != "67108864" {
			t.Errorf("%s/memory.limit_in_bytes = %s, want 67108864", dir, got)
		}
		rel, _ := filepath.Rel("/sys/fs/cgroup/memory", dir)
		quota, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", rel, "cpu.cfs_quota_us"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(quota)); got != "50000" {
			t.Errorf("cpu.cfs_quota_us = %s, want 50000", got)
		}
	}
	st := d.ContainerStatus(t, id)
	if got := st.GetResources().GetLinux().GetMemoryLimitInBytes(); got != limit {
		t.Errorf("ContainerStatus.resources memory limit %d, want %d", got, limit)
	}
}
