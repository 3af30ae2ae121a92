package runtime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

func TestAddRunscDefaults(t *testing.T) {
	known := "  -allow-suid\n    \tallows ID elevation\n  -gofer-network-namespace value\n  -oci-seccomp\n"
	if got := addRunscDefaults(nil, known); !slices.Equal(got, runscDefaults) {
		t.Errorf("all known: %v", got)
	}
	// Set by the handler (either spelling, with or without a value): kept.
	got := addRunscDefaults([]string{"--oci-seccomp=false", "-gofer-network-namespace=host"}, known)
	if !slices.Equal(got, []string{"--oci-seccomp=false", "-gofer-network-namespace=host", "--allow-suid"}) {
		t.Errorf("handler args kept: %v", got)
	}
	// An older runsc without the flags gets none.
	if got := addRunscDefaults([]string{"--x"}, "  -debug\n"); !slices.Equal(got, []string{"--x"}) {
		t.Errorf("unknown flags added: %v", got)
	}
}

func TestRunscPathMounts(t *testing.T) {
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"tmp", "etc/secret", "bin", "data"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/ls"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{
		Root: &specs.Root{Path: "rootfs"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc"},
			{Destination: "/tmp/cache", Type: "bind", Source: "/vol"},
			{Destination: "/data", Type: "bind", Source: "/d", Options: []string{"rbind", "rw"}},
		},
		Linux: &specs.Linux{
			MaskedPaths:   []string{"/proc/kcore", "/bin/ls", "/etc/secret", "/nope"},
			ReadonlyPaths: []string{"/proc/sys", "/tmp", "/data", "/nope"},
		},
	}
	changed, err := runscPathMounts(s, bundle)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	var got []string
	for _, m := range s.Mounts {
		got = append(got, m.Destination+" "+m.Type+" "+m.Source+" "+strings.Join(m.Options, ","))
	}
	want := []string{
		"/proc proc  ",
		// The image's /tmp read-only, below the volume mounted in it.
		"/tmp bind " + filepath.Join(rootfs, "tmp") + " rbind,ro",
		"/tmp/cache bind /vol ",
		// A volume at a read-only path becomes read-only.
		"/data bind /d rbind,ro",
		"/bin/ls bind " + filepath.Join(bundle, runscMaskFile) + " bind,ro,nosuid,nodev,noexec",
		"/etc/secret tmpfs tmpfs ro,nosuid,nodev,noexec",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mounts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fi, err := os.Stat(filepath.Join(bundle, runscMaskFile)); err != nil || fi.Mode().Perm() != 0 || fi.Size() != 0 {
		t.Errorf("mask file: %v %v", fi, err)
	}
}

func TestRunscIgnoredSysctls(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"fs.nr_open": "1", "kernel.shm_rmid_forced": "1", "net.ipv4.ping_group_range": "0 1"}}}
	if got := runscIgnoredSysctls(s); !slices.Equal(got, []string{"kernel.shm_rmid_forced", "net.ipv4.ping_group_range"}) {
		t.Errorf("ignored sysctls %v", got)
	}
}
