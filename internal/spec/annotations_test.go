package spec

import (
	"context"
	"maps"
	"strings"
	"testing"
)

func TestFilterAnnotations(t *testing.T) {
	in := map[string]string{
		"org.systemd.property.ExecStartPre":      "x",
		"run.oci.keep_original_groups":           "1",
		"dev.gvisor.spec.mount.data.share":       "pod",
		"io.kubernetes.container.restartCount":   "0",
		"example.com/note":                       "a",
		"example.com/deep/note":                  "b",
		"plain":                                  "c",
		"io.kubernetes.cri.sandbox-id":           "forged",
		"seccomp.security.alpha.kubernetes.io/x": "y",
	}
	for _, tc := range []struct {
		name    string
		allowed []string
		want    []string
	}{
		{"nil allows none", nil, nil},
		{"empty allows none", []string{}, nil},
		{"exact key", []string{"run.oci.keep_original_groups"}, []string{"run.oci.keep_original_groups"}},
		{"prefix glob", []string{"dev.gvisor.*"}, []string{"dev.gvisor.spec.mount.data.share"}},
		{"glob stops at a slash", []string{"example.com/*"}, []string{"example.com/note"}},
		{"star alone: keys without a slash, never berth's own", []string{"*"}, []string{
			"org.systemd.property.ExecStartPre", "run.oci.keep_original_groups", "dev.gvisor.spec.mount.data.share",
			"io.kubernetes.container.restartCount", "plain"}},
		{"io.kubernetes.cri.* is never allowed", []string{"io.kubernetes.cri.*", "io.kubernetes.cri.sandbox-id", "io.kubernetes.*"}, []string{
			"io.kubernetes.container.restartCount"}},
		{"several patterns", []string{"io.kubernetes.container.*", "example.com/*/*"}, []string{
			"io.kubernetes.container.restartCount", "example.com/deep/note"}},
		{"character class", []string{"pla[i]n"}, []string{"plain"}},
		{"a bad pattern matches nothing", []string{"[x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FilterAnnotations(tc.allowed, in)
			want := map[string]string{}
			for _, k := range tc.want {
				want[k] = in[k]
			}
			if len(got) != len(want) || (len(want) > 0 && !maps.Equal(got, want)) {
				t.Errorf("FilterAnnotations(%q) = %v, want %v", tc.allowed, got, want)
			}
		})
	}
}

func TestAnnotationsAllowLists(t *testing.T) {
	hostile := map[string]string{
		"org.systemd.property.ExecStartPre": "/bin/sh -c x",
		"run.oci.keep_original_groups":      "1",
		AnnotationSandboxID:                 "forged",
		AnnotationContainerType:             "sandbox",
		// Keys of berth's set that it does not put on this kind of spec,
		// and ones it does not set at all: still never from a client.
		AnnotationSandboxLogDir:                "/forged",
		AnnotationContainerName:                "forged",
		"io.kubernetes.cri.sandbox-cpu-period": "1",
	}
	newInput := func(host HostConfig) *testContainer {
		in := kubeletContainer()
		in.Host.PodAnnotations, in.Host.ContainerAnnotations = host.PodAnnotations, host.ContainerAnnotations
		in.Config.Annotations = maps.Clone(hostile)
		in.Config.Annotations["example.com/ctr"] = "c"
		in.Config.Annotations["shared"] = "from the container"
		in.Sandbox.Annotations = maps.Clone(hostile)
		in.Sandbox.Annotations["example.com/pod"] = "p"
		in.Sandbox.Annotations["shared"] = "from the pod"
		return in
	}
	check := func(t *testing.T, got map[string]string, sandboxID, kind string, want map[string]string) {
		t.Helper()
		for _, k := range []string{"org.systemd.property.ExecStartPre", "run.oci.keep_original_groups"} {
			if _, ok := got[k]; ok {
				t.Errorf("%s reached the spec", k)
			}
		}
		if got[AnnotationSandboxID] != sandboxID || got[AnnotationContainerType] != kind {
			t.Errorf("berth's own annotations forged: %v", got)
		}
		for k, v := range got {
			if strings.HasPrefix(k, "io.kubernetes.cri.") && v == "forged" || v == "/forged" || k == "io.kubernetes.cri.sandbox-cpu-period" {
				t.Errorf("client annotation %s=%q reached the spec", k, v)
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	}
	t.Run("default", func(t *testing.T) {
		in := newInput(HostConfig{})
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s.Annotations, in.SandboxID, ContainerTypeContainer, nil)
		for _, k := range []string{"example.com/ctr", "example.com/pod", "shared"} {
			if _, ok := s.Annotations[k]; ok {
				t.Errorf("%s reached the spec with no allow-list", k)
			}
		}
	})
	t.Run("allowed", func(t *testing.T) {
		host := HostConfig{PodAnnotations: []string{"example.com/*", "shared", "io.kubernetes.cri.*"}, ContainerAnnotations: []string{"example.com/*", "shared", "io.kubernetes.cri.*"}}
		in := newInput(host)
		s, err := generate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		// The container's value wins over the pod's, as in containerd.
		check(t, s.Annotations, in.SandboxID, ContainerTypeContainer,
			map[string]string{"example.com/ctr": "c", "example.com/pod": "p", "shared": "from the container"})
		sb, err := GenerateSandbox(&SandboxInput{ID: "pod1", Pod: ValidatedPod(in.Sandbox), RootfsPath: "/r",
			Namespaces: SandboxNamespaces{Net: "/ns/net", IPC: "/ns/ipc", UTS: "/ns/uts"},
			Host:       HostConfig{PodAnnotations: host.PodAnnotations}})
		if err != nil {
			t.Fatal(err)
		}
		check(t, sb.Annotations, "pod1", ContainerTypeSandbox, map[string]string{"example.com/pod": "p", "shared": "from the pod"})
		if _, ok := sb.Annotations["example.com/ctr"]; ok {
			t.Error("a container annotation reached the pause spec")
		}
	})
}

func TestBroadAnnotationPattern(t *testing.T) {
	for p, broad := range map[string]bool{
		"*": true, "*.gvisor.*": true, "?un.oci.*": true, "[a-z]*": true,
		"example.com/*": false, "dev.gvisor.spec.mount.*": false, "plain": false, `\*`: false,
	} {
		if got := BroadAnnotationPattern(p) != ""; got != broad {
			t.Errorf("BroadAnnotationPattern(%q) broad = %v, want %v", p, got, broad)
		}
	}
}
