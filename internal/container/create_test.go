package container

import (
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestResolveLogPath(t *testing.T) {
	for _, tc := range []struct {
		dir, rel, want string
		invalid        bool
	}{
		{"/var/log/pods/ns_p_u", "app/0.log", "/var/log/pods/ns_p_u/app/0.log", false},
		{"/var/log/pods/ns_p_u", "", "", false},
		{"/var/log/pods/ns_p_u", "../x.log", "", true},
		{"/var/log/pods/ns_p_u", "app/../../x.log", "", true},
		{"/var/log/pods/ns_p_u", "/etc/passwd", "", true},
		{"", "app/0.log", "", true},
		{"/var/log/pods/ns_p_u", "a/./b.log", "/var/log/pods/ns_p_u/a/b.log", false},
	} {
		got, err := resolveLogPath(tc.dir, tc.rel)
		if tc.invalid {
			if !errdefs.IsInvalid(err) {
				t.Errorf("resolveLogPath(%q, %q): got %q, %v; want InvalidArgument", tc.dir, tc.rel, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("resolveLogPath(%q, %q) = %q, %v; want %q", tc.dir, tc.rel, got, err, tc.want)
		}
	}
}
