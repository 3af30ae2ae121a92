package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/nri"
)

type domain struct{}

func (domain) ListPodSandboxes(context.Context) ([]*nri.Pod, error)     { return nil, nil }
func (domain) ListContainers(context.Context) ([]*nri.Container, error) { return nil, nil }
func (domain) UpdateContainerResources(context.Context, string, *runtimeapi.LinuxContainerResources) error {
	return nil
}
func (domain) EvictContainer(context.Context, string, string) error { return nil }

// buildPlugin builds this command into dir under name.
func buildPlugin(t *testing.T, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func readEvents(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "|"))
}

// waitEvents waits until the events file holds n lines.
func waitEvents(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := readEvents(t, path)
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pod(annotations map[string]string) *nri.Pod {
	return &nri.Pod{ID: "p1", Config: &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns"},
		Annotations: annotations,
	}}
}

func container(id string, annotations map[string]string) (*nri.Container, *specs.Spec) {
	s := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Linux: &specs.Linux{}}
	return &nri.Container{ID: id, PodID: "p1", Spec: s, Config: &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: id},
		Annotations: annotations,
	}}, s
}

// TestPreRegistered launches the plugin from a plugin dir with its config
// from the config dir, as berthd does at start.
func TestPreRegistered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	pluginDir, confDir, work := t.TempDir(), t.TempDir(), t.TempDir()
	buildPlugin(t, pluginDir, "10-berthtest")
	events := filepath.Join(work, "events")
	conf := "events: " + events + "\nmount-src: " + work + "\nmount-dst: /nri-test\nenv: FROM_CONF=yes\n"
	if err := os.WriteFile(filepath.Join(confDir, "10-berthtest.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := nri.DefaultConfig()
	cfg.Enable, cfg.DisableConnections = true, true
	cfg.PluginPath, cfg.PluginConfigPath = pluginDir, confDir
	a, err := nri.New(cfg, nri.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(domain{}); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()

	ctx := context.Background()
	p := pod(nil)
	if err := a.RunPodSandbox(ctx, p); err != nil {
		t.Fatal(err)
	}
	c, s := container("app", nil)
	if _, _, err := a.CreateContainer(ctx, p, c, s); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "FROM_CONF=yes") {
		t.Errorf("env %v", s.Process.Env)
	}
	if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/nri-test" && m.Source == work }) {
		t.Errorf("mounts %+v", s.Mounts)
	}
	// The annotation fails one container's create.
	bad, bs := container("bad", map[string]string{FailAnnotation: "CreateContainer"})
	if _, _, err := a.CreateContainer(ctx, p, bad, bs); err == nil || !strings.Contains(err.Error(), "fails CreateContainer for ns/pod/bad") {
		t.Errorf("annotated create: %v", err)
	}
	if err := a.RemoveContainer(ctx, p, c); err != nil {
		t.Fatal(err)
	}
	if err := a.StopPodSandbox(ctx, p); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Synchronize|pods=0|containers=0", "RunPodSandbox|ns/pod", "CreateContainer|ns/pod/app",
		"CreateContainer|ns/pod/bad", "StopContainer|ns/pod/bad", "RemoveContainer|ns/pod/bad",
		"StopContainer|ns/pod/app", "RemoveContainer|ns/pod/app", "StopPodSandbox|ns/pod",
	}
	if got := waitEvents(t, events, len(want)); !slices.Equal(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
}

// TestExternalHang connects the plugin over the socket and has it hang in
// StartContainer: berthd's call returns at the timeout and the plugin,
// disconnected, exits.
func TestExternalHang(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	dir := t.TempDir()
	bin := buildPlugin(t, dir, "berthtest")
	cfg := nri.DefaultConfig()
	cfg.Enable, cfg.PluginPath, cfg.PluginConfigPath = true, "", dir
	cfg.SocketPath = filepath.Join(dir, "nri.sock")
	cfg.RequestTimeout = 500 * time.Millisecond
	a, err := nri.New(cfg, nri.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(domain{}); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	events := filepath.Join(dir, "events")
	cmd := exec.Command(bin, "-socket", cfg.SocketPath, "-events", events, "-hang-on", "StartContainer")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	if ev := waitEvents(t, events, 1); len(ev) != 1 {
		t.Fatalf("plugin did not synchronise: %v", ev)
	}
	unblock := a.BlockPluginSync() // returns once the plugin is registered
	unblock()

	ctx := context.Background()
	p := pod(nil)
	c, s := container("app", nil)
	if err := a.RunPodSandbox(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.CreateContainer(ctx, p, c, s); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.StartContainer(ctx, p, c); err != nil {
		t.Fatalf("StartContainer with a hanging plugin: %v", err)
	}
	if took := time.Since(start); took < cfg.RequestTimeout || took > cfg.RequestTimeout+2*time.Second {
		t.Errorf("StartContainer took %s with a %s timeout", took, cfg.RequestTimeout)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("hung plugin still running after being cut off")
	}
}
