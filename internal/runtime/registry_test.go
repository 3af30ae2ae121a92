package runtime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/spec"
)

// fakeBinary writes an executable script at dir/name.
func fakeBinary(t *testing.T, dir, name, script string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRegistry: handlers are built from the config with their binaries'
// features; runsc (told apart by its binary's name, here only) gets the
// gVisor handler; names resolve with "" as the default.
func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	conmonPath := fakeBinary(t, bin, "conmon", "exit 0\n")
	runc := fakeBinary(t, bin, "runc", `[ "$1" = features ] && echo '{"mountOptions":["ro","rro"],"linux":{"namespaces":["user"],"mountExtensions":{"idmap":{"enabled":true}}}}'; exit 0`+"\n")
	crun := fakeBinary(t, bin, "crun", "exit 1\n") // no features document
	runsc := fakeBinary(t, bin, "runsc", "exit 0\n")
	state := filepath.Join(dir, "state")
	r, err := NewRegistry(context.Background(), Options{
		Handlers: map[string]config.Runtime{
			"runc":  {Path: runc, PrivilegedWithoutHostDevices: true, PodAnnotations: []string{"example.com/*"}},
			"crun":  {Path: crun, Features: config.RuntimeFeatures{RecursiveReadOnlyMounts: true}},
			"runsc": {Path: runsc, Root: filepath.Join(dir, "runsc-root")},
		},
		Default: "runc", Conmon: conmonPath, StateDir: state, ExitDir: filepath.Join(state, "exits"),
		SystemdCgroup: true, RecursiveReadOnlyMounts: true, IDMapMounts: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	if got := r.Names(); !slices.Equal(got, []string{"crun", "runc", "runsc"}) {
		t.Errorf("Names = %v", got)
	}
	def, err := r.Handler("")
	if err != nil || def.Name() != "runc" {
		t.Fatalf("default handler = %v, %v", def, err)
	}
	if f := def.Features(); !f.UserNamespaces || !f.IDMapMounts || !slices.Equal(f.MountOptions, []string{"ro", "rro"}) {
		t.Errorf("runc features from its features document = %+v, want user namespaces, idmap and its mount options", f)
	}
	if f := def.Features(); !f.RecursiveReadOnlyMounts || f.PodSandbox {
		t.Errorf("runc features %+v: want rro detected, no pod sandbox", f)
	}
	if s := def.SpecSettings(); !s.PrivilegedWithoutHostDevices || !slices.Equal(s.PodAnnotations, []string{"example.com/*"}) {
		t.Errorf("runc spec settings %+v", s)
	}
	rc := def.(*conmonHandler).rt
	if args := strings.Join(rc.GlobalArgs(), " "); args != "--root "+filepath.Join(state, "runtimes", "runc")+" --log-format json --systemd-cgroup" {
		t.Errorf("runc global args %q", args)
	}
	if h, _ := r.Handler("crun"); !h.Features().RecursiveReadOnlyMounts {
		t.Errorf("crun: configured rro lost")
	}

	h, err := r.Handler("runsc")
	if err != nil {
		t.Fatal(err)
	}
	rs, ok := h.(*runscHandler)
	if !ok || !h.Features().PodSandbox {
		t.Fatalf("runsc handler %T features %+v", h, h.Features())
	}
	if args := rs.rt.GlobalArgs(); slices.Contains(args, "--systemd-cgroup") {
		t.Errorf("runsc got --systemd-cgroup: %q", args)
	}
	path, _ := rs.monitorRT.Command()
	if path != filepath.Join(state, "runtimes", "runsc.conmon-shim") {
		t.Errorf("conmon runs %s for runsc, want the shim", path)
	}

	if _, err := r.Handler("kata"); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "known handlers: [crun runc runsc]") {
		t.Errorf("unknown handler: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(state, "exits")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("exit dir: %v %v", fi, err)
	}
	// Spec host facts: the node's, with what each handler changes.
	node := spec.HostConfig{NodeHostname: "n1", RecursiveReadOnlyMounts: false}
	runcHandler, _ := r.Handler("runc")
	got := SpecHost(runcHandler, node)
	if got.NodeHostname != "n1" || !got.RecursiveReadOnlyMounts || !got.PrivilegedWithoutHostDevices || !slices.Equal(got.PodAnnotations, []string{"example.com/*"}) {
		t.Errorf("SpecHost(runc) = %+v", got)
	}
	if node.RecursiveReadOnlyMounts {
		t.Error("SpecHost changed the node's facts")
	}
}

func TestRegistryMissingBinary(t *testing.T) {
	dir := t.TempDir()
	conmonPath := fakeBinary(t, dir, "conmon", "exit 0\n")
	_, err := NewRegistry(context.Background(), Options{
		Handlers: map[string]config.Runtime{"runc": {Path: filepath.Join(dir, "runc")}},
		Default:  "runc", Conmon: conmonPath, StateDir: dir, ExitDir: filepath.Join(dir, "exits"),
	})
	if err == nil || !strings.Contains(err.Error(), `runtime handler "runc": required binary runc`) || !strings.Contains(err.Error(), "apt-get install runc") {
		t.Errorf("missing runc: %v", err)
	}
}
