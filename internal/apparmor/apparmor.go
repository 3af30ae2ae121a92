// Package apparmor detects AppArmor on the host and generates and loads
// berth's default container profile, the one RuntimeDefault names.
package apparmor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// DefaultProfile is the name of the profile berth loads for RuntimeDefault.
const DefaultProfile = "berth-default"

// Enabled reports whether the kernel enforces AppArmor, as runc decides it:
// securityfs has an apparmor dir and the module says Y.
func Enabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && bytes.HasPrefix(b, []byte("Y"))
}

// ProfileParams is what a generated profile depends on.
type ProfileParams struct {
	// Name is the profile name containers run under.
	Name string
	// DaemonProfile is the profile berthd runs under ("unconfined" when
	// none), which may signal containers.
	DaemonProfile string
	// Abstractions is the host's /etc/apparmor.d: tunables/global and
	// abstractions/base are included when present there.
	Abstractions string
}

// Generate returns the text of the default container profile. It is the
// profile Docker, containerd and CRI-O load (github.com/moby/profiles
// apparmor template): file, network and capability access as the other
// confinement allows, but no mount, no writes to /proc and /sys outside the
// container's own entries, no access to kcore, sysrq-trigger, firmware and
// securityfs, and signals and ptrace only among the profile's own processes
// and from the runtime.
func Generate(p ProfileParams) (string, error) {
	if p.Name == "" || strings.ContainsAny(p.Name, " \t\n{}\"") {
		return "", fmt.Errorf("apparmor profile name %q is empty or has spaces, braces or quotes", p.Name)
	}
	if p.DaemonProfile == "" {
		p.DaemonProfile = "unconfined"
	}
	if strings.ContainsAny(p.DaemonProfile, " \t\n{}\"") {
		return "", fmt.Errorf("daemon apparmor profile %q has spaces, braces or quotes", p.DaemonProfile)
	}
	d := struct {
		ProfileParams
		Imports, InnerImports []string
	}{ProfileParams: p}
	if p.Abstractions != "" && exists(filepath.Join(p.Abstractions, "tunables/global")) {
		d.Imports = append(d.Imports, "#include <tunables/global>")
	} else {
		d.Imports = append(d.Imports, "@{PROC}=/proc/")
	}
	if p.Abstractions != "" && exists(filepath.Join(p.Abstractions, "abstractions/base")) {
		d.InnerImports = append(d.InnerImports, "#include <abstractions/base>")
	}
	var out bytes.Buffer
	if err := profileTemplate.Execute(&out, d); err != nil {
		return "", err
	}
	return out.String(), nil
}

// DaemonProfile is the AppArmor profile berthd itself runs under.
func DaemonProfile() string {
	b, err := os.ReadFile("/proc/self/attr/current")
	if err != nil {
		return "unconfined"
	}
	// "name (enforce)"; profile names have no spaces.
	name, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if name == "" {
		return "unconfined"
	}
	return name
}

// Load compiles and loads (or replaces) a profile with apparmor_parser,
// reading it from stdin; -K keeps the parser from writing a cache.
func Load(ctx context.Context, profile string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apparmor_parser", "-Kr")
	cmd.Stdin = strings.NewReader(profile)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apparmor_parser -Kr: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// LoadDefault generates berth's default profile for this host and loads it.
func LoadDefault(ctx context.Context) error {
	text, err := Generate(ProfileParams{Name: DefaultProfile, DaemonProfile: DaemonProfile(), Abstractions: "/etc/apparmor.d"})
	if err != nil {
		return err
	}
	if err := Load(ctx, text); err != nil {
		return err
	}
	ok, err := IsLoaded(DefaultProfile)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("apparmor profile %s is not listed in /sys/kernel/security/apparmor/profiles after loading", DefaultProfile)
	}
	return nil
}

// IsLoaded reports whether the kernel has a profile called name.
func IsLoaded(name string) (bool, error) {
	f, err := os.Open("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "name (enforce)"
		if n, _, _ := strings.Cut(sc.Text(), " "); n == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// profileTemplate follows the template that moby/profiles, containerd and
// CRI-O share, so berth containers are confined as theirs are. Keep it in
// step with upstream rather than editing rules here.
var profileTemplate = template.Must(template.New("apparmor").Parse(`
{{range $v := .Imports}}
{{$v}}
{{end}}

profile {{.Name}} flags=(attach_disconnected,mediate_deleted) {
{{range $v := .InnerImports}}
  {{$v}}
{{end}}

  network,
  capability,
  file,
  umount,
  # Host (privileged) processes may send signals to container processes.
  signal (receive) peer=unconfined,
  # runc and crun may send signals to container processes (stop).
  signal (receive) peer=runc,
  signal (receive) peer=crun,
  # berthd may send signals to container processes.
  signal (receive) peer={{.DaemonProfile}},
  # Container processes may send signals amongst themselves.
  signal (send,receive) peer={{.Name}},

  deny @{PROC}/* w,   # deny write for all files directly in /proc (not in a subdir)
  # deny write to files not in /proc/<number>/** or /proc/sys/**
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,  # deny /proc/sys except /proc/sys/k* (effectively /proc/sys/kernel)
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,  # deny everything except shm* in /proc/sys/kernel/
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,

  deny mount,

  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
  deny /sys/kernel/security/** rwklx,

  # suppress ptrace denials when using ps inside a container
  ptrace (trace,read,tracedby,readby) peer={{.Name}},
}
`))
