package apparmor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	text, err := Generate(ProfileParams{Name: DefaultProfile, DaemonProfile: "berthd-prof"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"profile berth-default flags=(attach_disconnected,mediate_deleted) {",
		"@{PROC}=/proc/", // no tunables on the host: defined inline
		"deny mount,",
		"deny @{PROC}/sysrq-trigger rwklx,",
		"deny @{PROC}/kcore rwklx,",
		"deny /sys/kernel/security/** rwklx,",
		"deny /sys/firmware/** rwklx,",
		"signal (receive) peer=berthd-prof,",
		"signal (send,receive) peer=berth-default,",
		"ptrace (trace,read,tracedby,readby) peer=berth-default,",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("profile lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "#include") {
		t.Errorf("includes without an abstractions dir:\n%s", text)
	}
	if strings.Count(text, "{") != strings.Count(text, "}") {
		t.Errorf("unbalanced braces:\n%s", text)
	}
}

func TestGenerateIncludesHostAbstractions(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"tunables/global", "abstractions/base"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, err := Generate(ProfileParams{Name: "p", Abstractions: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "#include <tunables/global>") || !strings.Contains(text, "#include <abstractions/base>") {
		t.Errorf("host abstractions not included:\n%s", text)
	}
	if strings.Contains(text, "@{PROC}=/proc/") {
		t.Errorf("@{PROC} defined although tunables/global is included:\n%s", text)
	}
	// An empty daemon profile is unconfined.
	if !strings.Contains(text, "signal (receive) peer=unconfined,") {
		t.Errorf("daemon profile not defaulted:\n%s", text)
	}
}

func TestGenerateRefusesBadNames(t *testing.T) {
	for _, n := range []string{"", "a b", "x{", "q\"", "n\nm"} {
		if _, err := Generate(ProfileParams{Name: n}); err == nil {
			t.Errorf("name %q accepted", n)
		}
		if _, err := Generate(ProfileParams{Name: "ok", DaemonProfile: n + " x"}); err == nil {
			t.Errorf("daemon profile %q accepted", n+" x")
		}
	}
}

// TestLoadDefault loads the profile where the host has AppArmor.
func TestLoadDefault(t *testing.T) {
	if !Enabled() || os.Geteuid() != 0 {
		t.Skip("AppArmor is not enabled on this host (or not root)")
	}
	if err := LoadDefault(t.Context()); err != nil {
		t.Fatal(err)
	}
}
