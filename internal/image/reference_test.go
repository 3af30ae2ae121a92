package image

import (
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestParseReference(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		in, want string
	}{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1"},
		{"foo/bar:1", "docker.io/foo/bar:1"},
		{"127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"},
		{"localhost/x:y", "localhost/x:y"},
		{"localhost:5000/a/b/c:v", "localhost:5000/a/b/c:v"},
		{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"},
		{"busybox@" + dg, "docker.io/library/busybox@" + dg},
		{"busybox:1@" + dg, "docker.io/library/busybox@" + dg},
		{"quay.io/a/b@" + dg, "quay.io/a/b@" + dg},
	}
	for _, c := range cases {
		got, err := NormalizeReference(c.in)
		if err != nil {
			t.Errorf("NormalizeReference(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("NormalizeReference(%q) = %q, want %q", c.in, got, c.want)
		}
	}

	for _, bad := range []string{"", "Busybox", "foo::bar", "busybox:", "a b", " busybox", "busybox@sha256:short", "http://x/y", "busybox:" + string(make([]byte, 200))} {
		_, err := ParseReference(bad)
		if !errdefs.IsInvalid(err) {
			t.Errorf("ParseReference(%q) = %v, want an invalid-argument error", bad, err)
		}
	}

	r, err := ParseReference("127.0.0.1:5000/x@" + dg)
	if err != nil || r.Repo != "127.0.0.1:5000/x" || r.Digest != dg || r.Tag != "" {
		t.Errorf("ParseReference digest ref = %+v, %v", r, err)
	}
}
