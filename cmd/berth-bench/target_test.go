package main

import (
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	got, err := ParseTarget("name=containerd,endpoint=/run/c.sock,helpers=containerd-shim-runc-v2|pause,pid=42")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "containerd" || got.Endpoint != "unix:///run/c.sock" || got.PID != 42 || got.SocketPath() != "/run/c.sock" {
		t.Errorf("got %+v", got)
	}
	for name, want := range map[string]bool{"containerd-shim-runc-v2": true, "pause": true, "berth-pause": false, "conmon": false} {
		if got.Helpers.MatchString(name) != want {
			t.Errorf("helpers match %q = %v, want %v", name, !want, want)
		}
	}
	if got, err := ParseTarget("endpoint=unix:///run/berth/berth.sock"); err != nil || got.Name != "/run/berth/berth.sock" || got.Helpers != nil {
		t.Errorf("endpoint only: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "name=x", "endpoint=tcp://1.2.3.4:1", "endpoint=/s,pid=0", "endpoint=/s,helpers=(", "endpoint=/s,colour=blue", "endpoint"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
}

func TestListenerPIDAndProcName(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if pid, err := listenerPID(sock); err != nil || pid != os.Getpid() {
		t.Errorf("listenerPID(%s) = %d, %v; want this process, %d", sock, pid, err, os.Getpid())
	}
	if _, err := listenerPID(sock + ".none"); err == nil {
		t.Error("listenerPID of a socket nobody listens on succeeded")
	}
	if got, want := procName(os.Getpid()), filepath.Base(os.Args[0]); got != want {
		t.Errorf("procName(self) = %q, want %q", got, want)
	}
	m, err := readMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.PSS <= 0 || m.Threads < 1 {
		t.Errorf("readMemory(self) = %+v, %v", m, err)
	}
}

func TestParseTargetMetrics(t *testing.T) {
	got, err := ParseTarget("endpoint=/s,metrics=http://127.0.0.1:9531/metrics")
	if err != nil || got.Metrics != "http://127.0.0.1:9531/metrics" {
		t.Errorf("got %+v, %v", got, err)
	}
	if _, err := ParseTarget("endpoint=/s,metrics=127.0.0.1:9531"); err == nil {
		t.Error("metrics without http:// accepted")
	}
}

func TestStepMeans(t *testing.T) {
	page := func(s string) stepTotals {
		t.Helper()
		st, err := parseSteps(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := page(`# HELP berth_cri_step_duration_seconds x
berth_cri_step_duration_seconds_bucket{method="RunPodSandbox",step="network",le="0.1"} 1
berth_cri_step_duration_seconds_sum{method="RunPodSandbox",step="network"} 0.02
berth_cri_step_duration_seconds_count{method="RunPodSandbox",step="network"} 1
berth_cri_request_duration_seconds_sum{method="Version"} 5
`)
	after := page(`berth_cri_step_duration_seconds_sum{method="RunPodSandbox",step="network"} 0.08
berth_cri_step_duration_seconds_count{method="RunPodSandbox",step="network"} 3
berth_cri_step_duration_seconds_sum{method="RunPodSandbox",step="files"} 0.002
berth_cri_step_duration_seconds_count{method="RunPodSandbox",step="files"} 2
berth_cri_step_duration_seconds_sum{method="CreateContainer",step="rootfs"} 0.01
berth_cri_step_duration_seconds_count{method="CreateContainer",step="rootfs"} 2
`)
	got := stepMeans("kubelet", before, after)
	want := []ServerStep{
		{"kubelet", "RunPodSandbox", "files", 2, 1},
		{"kubelet", "RunPodSandbox", "network", 2, 30},
		{"kubelet", "CreateContainer", "rootfs", 2, 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		g := got[i]
		if g.Workload != want[i].Workload || g.Method != want[i].Method || g.Step != want[i].Step || g.N != want[i].N || math.Abs(g.MeanMS-want[i].MeanMS) > 1e-9 {
			t.Errorf("step %d = %+v, want %+v", i, g, want[i])
		}
	}
}
