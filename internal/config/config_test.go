package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
}

func TestWriteDefaultRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDefault(&b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "berth.toml")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p, "", true)
	if err != nil {
		t.Fatalf("Load of WriteDefault output: %v\n%s", err, b.String())
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	// Decoding onto the zero value (not onto defaults) must give the
	// defaults too: the file really holds every setting.
	var zero Config
	if err := zero.decode(p, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&zero, Default()) {
		t.Fatalf("output misses settings:\n got %+v\nwant %+v", zero, *Default())
	}
	// Every setting has a comment line right above it.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") || len(lines[i-1]) < 5 {
			if !strings.HasPrefix(l, "[runtimes.") { // map entries share the map's comment
				t.Errorf("line %d %q has no comment above it", i+1, l)
			}
		}
	}
	t.Logf("\n%s", b.String())
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFileThenDropInsInOrder(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "berth.toml")
	dropins := filepath.Join(dir, "berth.d")
	writeFile(t, main, `
log_level = "debug"
root = "/srv/berth"
[runtimes.runc]
path = "/usr/sbin/runc"
args = ["--debug"]
[runtimes.kata]
path = "/opt/kata/bin/kata-runtime"
[network]
bin_dirs = ["/a", "/b", "/c"]
`)
	// 20 sorts after 10, so it wins where both set a key.
	writeFile(t, filepath.Join(dropins, "20-second.toml"), `
log_level = "error"
[images]
max_concurrent_downloads = 8
pinned_images = ["registry.k8s.io/pause:3.10", "busybox", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
`)
	writeFile(t, filepath.Join(dropins, "10-first.toml"), `
log_level = "warn"
uncollected_result_ttl = "90s"
[runtimes.runc]
root = "/run/runc-berth"
[runtimes.runc.features]
recursive_read_only_mounts = true
[network]
bin_dirs = ["/x"]
`)
	writeFile(t, filepath.Join(dropins, "30-ignored.conf"), `this is not toml`)
	if err := os.Mkdir(filepath.Join(dropins, "40-dir.toml"), 0o755); err != nil {
		t.Fatal(err)
	}

	c, err := Load(main, dropins, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "error" {
		t.Errorf("log_level = %q, want the last drop-in's error", c.LogLevel)
	}
	if c.Root != "/srv/berth" {
		t.Errorf("root = %q, want the file's value kept", c.Root)
	}
	if c.StateDir != "/run/berth" {
		t.Errorf("state_dir = %q, want the default kept", c.StateDir)
	}
	if c.UncollectedResultTTL.Duration != 90*time.Second {
		t.Errorf("uncollected_result_ttl = %v", c.UncollectedResultTTL)
	}
	if c.Images.MaxConcurrentDownloads != 8 || c.Images.PullProgressTimeout.Duration != time.Minute || len(c.Images.PinnedImages) != 3 {
		t.Errorf("images = %+v", c.Images)
	}
	if !reflect.DeepEqual(c.Network.BinDirs, []string{"/x"}) {
		t.Errorf("bin_dirs = %v, want arrays replaced", c.Network.BinDirs)
	}
	if c.Network.ConfDir != "/etc/cni/net.d" {
		t.Errorf("conf_dir = %q", c.Network.ConfDir)
	}
	// The drop-in set only root and a feature of runc: path and args stay.
	want := Runtime{Path: "/usr/sbin/runc", Root: "/run/runc-berth", Args: []string{"--debug"},
		PodAnnotations: []string{}, ContainerAnnotations: []string{},
		Features: RuntimeFeatures{RecursiveReadOnlyMounts: true}}
	if got := c.Runtimes["runc"]; !reflect.DeepEqual(got, want) {
		t.Errorf("runtimes.runc = %+v, want %+v", got, want)
	}
	if got := c.Runtimes["kata"].Path; got != "/opt/kata/bin/kata-runtime" {
		t.Errorf("runtimes.kata.path = %q", got)
	}
	rt, err := c.Runtime("kata")
	if err != nil || rt.Root != "/run/berth/runtimes/kata" {
		t.Errorf("Runtime(kata) = %+v, %v; want root under state_dir", rt, err)
	}
	rt, err = c.Runtime("")
	if err != nil || rt.Path != "/usr/sbin/runc" || rt.Root != "/run/runc-berth" {
		t.Errorf("Runtime(\"\") = %+v, %v; want runc", rt, err)
	}
	if _, err := c.Runtime("nope"); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "kata, runc") {
		t.Errorf("Runtime(nope) error = %v", err)
	}
}

func TestMissingFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.toml")
	if _, err := Load(missing, filepath.Join(dir, "nodir"), false); err != nil {
		t.Errorf("missing default file and drop-in dir: %v", err)
	}
	_, err := Load(missing, "", true)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing explicit file: error %v, want one naming %s", err, missing)
	}
	c, err := Load("", "", false)
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load with no sources = %+v, %v", c, err)
	}
}

func TestBadValuesNameTheKey(t *testing.T) {
	cases := []struct{ toml, want string }{
		{`log_level = "loud"`, `log_level "loud": want debug, info, warn or error`},
		{`log_format = "xml"`, `log_format "xml": want text or json`},
		{`root = "relative"`, `root "relative": want an absolute path`},
		{`cgroup_driver = "cgmanager"`, `cgroup_driver "cgmanager"`},
		{`restrict_oom_score_adj = "maybe"`, `restrict_oom_score_adj "maybe": want auto, true or false`},
		{`uncollected_result_ttl = "0s"`, `uncollected_result_ttl "0s": want a positive duration`},
		{`uncollected_result_ttl = "soon"`, `uncollected_result_ttl`},
		{`exec_sync_max_output = 0`, `exec_sync_max_output "0"`},
		{`default_runtime = "crun"`, `default_runtime "crun": want one of the configured runtimes: runc`},
		{"[runtimes.Bad_Name]\npath = \"x\"", `runtimes.Bad_Name "Bad_Name"`},
		{"[runtimes.runc]\npath = \"bin/runc\"", `runtimes.runc.path "bin/runc"`},
		{"[runtimes.runc]\npod_annotations = [\"[x\"]", `runtimes.runc.pod_annotations[0] "[x": want a glob`},
		{"[runtimes.runc]\ncontainer_annotations = [\"ok/*\", \"\"]", `runtimes.runc.container_annotations[1] ""`},
		{"[network]\ndefault_subnet = \"10.88.0.1/16\"", `network.default_subnet "10.88.0.1/16"`},
		{"[network]\ndefault_bridge = \"a-very-long-bridge-name\"", `network.default_bridge`},
		{"[network]\nbin_dirs = []", `network.bin_dirs: want at least one`},
		{"[streaming]\naddress = \"localhost\"", `streaming.address "localhost"`},
		{"[streaming]\ntls_cert = \"/c.pem\"", `streaming.tls_cert and streaming.tls_key`},
		{"[images]\nmax_concurrent_downloads = 0", `images.max_concurrent_downloads "0": want 1 or more`},
		{"[images]\nmax_layer_entries = 10", `images.max_layer_entries "10": want a number of entries, at least 1000`},
		{"[images]\npinned_images = [\"Bad Ref\"]", `images.pinned_images[0] "Bad Ref": want an image reference`},
		{"[images]\npinned_images = [\"\"]", `images.pinned_images[0] "": want an image reference`},
		{"[metrics]\naddress = \":x\"", `metrics.address ":x"`},
		{"[nri]\nenable = true\nsocket_path = \"nri.sock\"", `nri.socket_path "nri.sock"`},
		{"[nri]\nenable = true\nplugin_request_timeout = \"0s\"", `nri.plugin_request_timeout 0s`},
		{"[cdi]\nspec_dirs = [\"cdi\"]", `cdi.spec_dirs: "cdi" is not an absolute path`},
		{`log_level = 3`, `log_level`}, // wrong TOML type
	}
	for _, tc := range cases {
		p := filepath.Join(t.TempDir(), "berth.toml")
		writeFile(t, p, tc.toml)
		_, err := Load(p, "", true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.toml, err, tc.want)
		}
	}
}

func TestNRIAndCDISections(t *testing.T) {
	p := filepath.Join(t.TempDir(), "berth.toml")
	writeFile(t, p, "[nri]\nenable = true\nsocket_path = \"/run/test/nri.sock\"\nplugin_request_timeout = \"3s\"\n[cdi]\nspec_dirs = [\"/tmp/cdi\"]\n")
	c, err := Load(p, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NRI.Enable || c.NRI.SocketPath != "/run/test/nri.sock" || c.NRI.RequestTimeout != 3*time.Second || c.NRI.RegistrationTimeout != 5*time.Second {
		t.Errorf("nri = %+v", c.NRI)
	}
	if len(c.CDI.SpecDirs) != 1 || c.CDI.SpecDirs[0] != "/tmp/cdi" {
		t.Errorf("cdi = %+v", c.CDI)
	}
	if Default().NRI.Enable {
		t.Error("NRI is on by default")
	}
}

func TestAllProblemsReported(t *testing.T) {
	c := Default()
	c.LogLevel = "loud"
	c.Network.DefaultSubnet = "nope"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "log_level") || !strings.Contains(err.Error(), "network.default_subnet") {
		t.Fatalf("error %v, want both keys named", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "berth.toml")
	writeFile(t, p, "log_lvl = \"debug\"\n[network]\nbridge = \"x\"\n[runtimes.runc]\nbinary = \"/x\"\n")
	_, err := Load(p, "", true)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, k := range []string{"log_lvl", "network.bridge", "runtimes.runc.binary", p} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error %q does not name %s", err, k)
		}
	}
	// Unknown keys in a drop-in name the drop-in.
	d := filepath.Join(dir, "d")
	writeFile(t, filepath.Join(d, "50-x.toml"), "[images]\nparallel = 2\n")
	_, err = Load("", d, false)
	if err == nil || !strings.Contains(err.Error(), "50-x.toml") || !strings.Contains(err.Error(), "images.parallel") {
		t.Errorf("drop-in unknown key error = %v", err)
	}
}

func TestRestrictOOMScoreAdj(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want AutoBool
	}{
		{`restrict_oom_score_adj = true`, "true"},
		{`restrict_oom_score_adj = false`, "false"},
		{`restrict_oom_score_adj = "auto"`, "auto"},
	} {
		p := filepath.Join(t.TempDir(), "berth.toml")
		writeFile(t, p, tc.toml)
		c, err := Load(p, "", true)
		if err != nil {
			t.Fatalf("%s: %v", tc.toml, err)
		}
		if c.RestrictOOMScoreAdj != tc.want {
			t.Errorf("%s: got %q", tc.toml, c.RestrictOOMScoreAdj)
		}
	}
	c := Default()
	if got, want := c.OOMScoreAdjRestricted(), !HasCapSysResource(); got != want {
		t.Errorf("auto: restricted = %v, want %v", got, want)
	}
	c.RestrictOOMScoreAdj = "false"
	if c.OOMScoreAdjRestricted() {
		t.Error("false: restricted")
	}
}

func TestCgroupDriver(t *testing.T) {
	old := systemdRunDir
	t.Cleanup(func() { systemdRunDir = old })
	c := Default()
	systemdRunDir = t.TempDir()
	if got := c.CgroupDriver(); got != "systemd" {
		t.Errorf("with systemd dir: %q", got)
	}
	// The default parent is a path, which systemd setups accept too.
	if err := c.Validate(); err != nil {
		t.Errorf("defaults on a systemd host: %v", err)
	}
	systemdRunDir = filepath.Join(t.TempDir(), "absent")
	if got := c.CgroupDriver(); got != "cgroupfs" {
		t.Errorf("without systemd dir: %q", got)
	}
	c.CgroupDriverSetting = "systemd"
	c.DefaultCgroupParent = "berth.slice"
	if got := c.CgroupDriver(); got != "systemd" {
		t.Errorf("explicit: %q", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("systemd with a slice parent: %v", err)
	}
	c.CgroupDriverSetting = "cgroupfs"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "default_cgroup_parent") {
		t.Errorf("cgroupfs with a slice parent: %v", err)
	}
}

func TestDurationText(t *testing.T) {
	for in, want := range map[time.Duration]string{5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Second: "1m30s", 0: "0s", 2*time.Hour + time.Second: "2h0m1s"} {
		b, _ := Duration{in}.MarshalText()
		if string(b) != want {
			t.Errorf("%v -> %q, want %q", in, b, want)
		}
		var d Duration
		if err := d.UnmarshalText(b); err != nil || d.Duration != in {
			t.Errorf("%q -> %v, %v", b, d, err)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("bad duration accepted")
	}
}

func TestSlogLevel(t *testing.T) {
	c := Default()
	c.LogLevel = "debug"
	if c.SlogLevel().String() != "DEBUG" {
		t.Errorf("got %v", c.SlogLevel())
	}
}
