package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveEndpoint(t *testing.T) {
	dir := t.TempDir()
	crictl := filepath.Join(dir, "crictl.yaml")
	if err := os.WriteFile(crictl, []byte("runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///x\ntimeout: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("runtime-endpoint: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		flag       string
		env        map[string]string
		want, from string
		wantErr    string
	}{
		{name: "default", env: map[string]string{"CRI_CONFIG_FILE": filepath.Join(dir, "none.yaml")}, want: defaultSocket, from: "default"},
		{name: "flag wins", flag: "/tmp/a.sock", env: map[string]string{"BERTH_SOCKET": "/b.sock", "CONTAINER_RUNTIME_ENDPOINT": "/c.sock"}, want: "unix:///tmp/a.sock", from: "--socket"},
		{name: "BERTH_SOCKET", env: map[string]string{"BERTH_SOCKET": "unix:///b.sock", "CONTAINER_RUNTIME_ENDPOINT": "/c.sock"}, want: "unix:///b.sock", from: "$BERTH_SOCKET"},
		{name: "CONTAINER_RUNTIME_ENDPOINT", env: map[string]string{"CONTAINER_RUNTIME_ENDPOINT": "/c.sock", "CRI_CONFIG_FILE": crictl}, want: "unix:///c.sock", from: "$CONTAINER_RUNTIME_ENDPOINT"},
		{name: "crictl.yaml", env: map[string]string{"CRI_CONFIG_FILE": crictl}, want: "unix:///run/containerd/containerd.sock", from: crictl},
		{name: "malformed crictl.yaml", env: map[string]string{"CRI_CONFIG_FILE": bad}, wantErr: "crictl's config " + bad},
		{name: "tcp refused", flag: "tcp://1.2.3.4:5", wantErr: `endpoint "tcp://1.2.3.4:5" (from --socket): only unix sockets are supported`},
		{name: "relative unix path", env: map[string]string{"BERTH_SOCKET": "unix://x.sock"}, wantErr: `endpoint "unix://x.sock" (from $BERTH_SOCKET): want an absolute path`},
	}
	for _, tt := range tests {
		getenv := func(k string) string { return tt.env[k] }
		got, err := resolveEndpoint(tt.flag, getenv)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.addr != tt.want || got.source != tt.from {
			t.Errorf("%s: %+v, %v; want %s from %s", tt.name, got, err, tt.want, tt.from)
		}
	}
}

// TestEndpointFromEnv drives the whole CLI through CONTAINER_RUNTIME_ENDPOINT
// and checks that --help says how the endpoint is found.
func TestEndpointFromEnv(t *testing.T) {
	ep := startFake(t, sampleCRI())
	t.Setenv("BERTH_SOCKET", "")
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", ep)
	var out, errb strings.Builder
	if code := execute(t.Context(), []string{"pods", "-q"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b") {
		t.Errorf("pods via CONTAINER_RUNTIME_ENDPOINT: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	execute(t.Context(), []string{"--help"}, strings.NewReader(""), &out, &errb)
	for _, want := range []string{"$CONTAINER_RUNTIME_ENDPOINT", "/etc/crictl.yaml", "containerd or CRI-O", "125"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s:\n%s", want, out.String())
		}
	}
}
