package runtime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunscAdjust(t *testing.T) {
	names := func(string) (string, error) { return "pod-host", nil }
	nsTypes := func(s *specs.Spec) []string {
		var out []string
		for _, ns := range s.Linux.Namespaces {
			out = append(out, string(ns.Type)+"="+ns.Path)
		}
		return out
	}

	// A container joining the pod's PID namespace joins the sandbox's root
	// one instead: its PID namespace entry goes.
	c := &specs.Spec{
		Annotations: map[string]string{annotationContainerType: "container"},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.PIDNamespace, Path: "/state/pod/pidns"},
			{Type: specs.NetworkNamespace, Path: "/state/pod/netns"},
			{Type: specs.MountNamespace},
		}},
	}
	changed, err := runscAdjust(c, names)
	if err != nil || !changed {
		t.Fatalf("container: changed %v, %v", changed, err)
	}
	if got := nsTypes(c); !slices.Equal(got, []string{"network=/state/pod/netns", "mount="}) {
		t.Errorf("container namespaces %v", got)
	}
	// Its own PID namespace stays.
	own := &specs.Spec{
		Annotations: map[string]string{annotationContainerType: "container"},
		Linux:       &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}},
	}
	if changed, _ := runscAdjust(own, names); changed {
		t.Errorf("a container with its own PID namespace was changed: %v", nsTypes(own))
	}

	// The sandbox gets the host name of the UTS namespace it joins.
	sb := &specs.Spec{
		Annotations: map[string]string{annotationContainerType: "sandbox"},
		Linux:       &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.UTSNamespace, Path: "/state/pod/utsns"}}},
	}
	if changed, err := runscAdjust(sb, names); err != nil || !changed || sb.Hostname != "pod-host" {
		t.Errorf("sandbox: changed %v, %v, hostname %q", changed, err, sb.Hostname)
	}
	bad := &specs.Spec{
		Annotations: map[string]string{annotationContainerType: "sandbox"},
		Linux:       &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.UTSNamespace, Path: "/gone"}}},
	}
	if _, err := runscAdjust(bad, func(string) (string, error) { return "", errors.New("gone") }); err == nil {
		t.Error("an unreadable UTS namespace was not an error")
	}
	// Specs without CRI annotations (runsc run by hand) are left alone.
	plain := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/x"}}}}
	if changed, _ := runscAdjust(plain, names); changed {
		t.Error("a spec without annotations was changed")
	}
}

func TestUTSNamespaceName(t *testing.T) {
	want, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	got, err := utsNamespaceName("/proc/self/ns/uts")
	if err != nil {
		t.Skipf("cannot join a UTS namespace here: %v", err)
	}
	if got != want {
		t.Errorf("host name %q, want %q", got, want)
	}
}

func TestRunscSandboxArgs(t *testing.T) {
	write := func(t *testing.T, s *specs.Spec) string {
		dir := t.TempDir()
		b, _ := json.Marshal(s)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	hostNet := write(t, &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}})
	podNet := write(t, &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/n"}}}})
	for _, tc := range []struct {
		bundle string
		args   []string
		want   []string
	}{
		{hostNet, nil, []string{"--network=host"}},
		{hostNet, []string{"--network=none"}, nil},
		{podNet, nil, nil},
	} {
		got, err := runscSandboxArgs(tc.bundle, tc.args)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("runscSandboxArgs(%v) = %v, %v; want %v", tc.args, got, err, tc.want)
		}
	}
}
