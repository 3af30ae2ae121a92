package spec

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
)

// fakeHost is a HostFS over in-memory maps.
type fakeHost struct {
	paths    map[string]bool
	devices  map[string][]specs.LinuxDevice
	profiles map[string]string
}

func (h fakeHost) Stat(p string) error {
	if h.paths[p] {
		return nil
	}
	return &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

func (h fakeHost) Devices(p string) ([]specs.LinuxDevice, error) {
	if d, ok := h.devices[p]; ok {
		return d, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

func (h fakeHost) ReadFile(p string) ([]byte, error) {
	if b, ok := h.profiles[p]; ok {
		return []byte(b), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

func testDev(p, typ string, major, minor int64) specs.LinuxDevice {
	mode := fs.FileMode(0o666)
	var zero uint32
	return specs.LinuxDevice{Path: p, Type: typ, Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero}
}

// applyOpts runs opts on a fresh base spec.
func applyOpts(t *testing.T, opts ...Opt) (*specs.Spec, error) {
	t.Helper()
	s := baseSpec("/rootfs", DefaultCapabilities())
	return s, Apply(s, opts...)
}

func wantInvalid(t *testing.T, err error, mention string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want InvalidArgument mentioning %q, got nil", mention)
	}
	if !errdefs.IsInvalid(err) {
		t.Fatalf("want InvalidArgument, got %v", err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("error %q does not mention %q", err, mention)
	}
}

func TestWithProcessArgs(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		command, args, entry, cmd, want []string
	}{
		{"command and args", []string{"/bin/app"}, []string{"-v"}, []string{"/entry"}, []string{"cmd"}, []string{"/bin/app", "-v"}},
		{"command drops image cmd", []string{"/bin/app"}, nil, []string{"/entry"}, []string{"cmd"}, []string{"/bin/app"}},
		{"args replace cmd", nil, []string{"a"}, []string{"/entry"}, []string{"cmd"}, []string{"/entry", "a"}},
		{"image entrypoint and cmd", nil, nil, []string{"/entry"}, []string{"cmd"}, []string{"/entry", "cmd"}},
		{"image cmd only", nil, nil, nil, []string{"sh"}, []string{"sh"}},
		{"empty entrypoint means none", nil, nil, []string{""}, []string{"sh"}, []string{"sh"}},
		{"args only, no entrypoint", nil, []string{"echo", "hi"}, nil, []string{"sh"}, []string{"echo", "hi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := applyOpts(t, WithProcessArgs(tc.command, tc.args, tc.entry, tc.cmd))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.Args, tc.want) {
				t.Fatalf("args = %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
	_, err := applyOpts(t, WithProcessArgs(nil, nil, []string{""}, nil))
	wantInvalid(t, err, "no command specified")
}

func TestWithEnv(t *testing.T) {
	cfgEnv := []*runtimeapi.KeyValue{{Key: "A", Value: []byte("config")}, {Key: "EMPTY", Value: nil}}
	s, err := applyOpts(t,
		WithDefaultPathEnv(),
		WithEnv([]string{"HOSTNAME=pod"}),
		WithEnv(mergeEnv([]string{"PATH=/bin", "A=image", "B=image"}, cfgEnv)),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "HOSTNAME=pod", "A=config", "B=image", "EMPTY="}
	if !reflect.DeepEqual(s.Process.Env, want) {
		t.Fatalf("env = %q, want %q", s.Process.Env, want)
	}
	s, _ = applyOpts(t, WithDefaultPathEnv(), WithEnv([]string{"X=1"}))
	if !reflect.DeepEqual(s.Process.Env, []string{DefaultPath, "X=1"}) {
		t.Fatalf("default PATH missing: %q", s.Process.Env)
	}
	if got := replaceOrAppendEnv([]string{"A=1", "B=2"}, []string{"A", "C=3"}); !reflect.DeepEqual(got, []string{"B=2", "C=3"}) {
		t.Fatalf("unset: %q", got)
	}
}

func TestWithWorkingDir(t *testing.T) {
	for _, tc := range []struct{ config, image, want string }{
		{"/work", "/img", "/work"},
		{"", "/img", "/img"},
		{"", "rel", "/rel"},
		{"", "", "/"},
		{"/a/../b/", "", "/b"},
	} {
		s, err := applyOpts(t, WithWorkingDir(tc.config, tc.image))
		if err != nil {
			t.Fatal(err)
		}
		if s.Process.Cwd != tc.want {
			t.Errorf("cwd(%q,%q) = %q, want %q", tc.config, tc.image, s.Process.Cwd, tc.want)
		}
	}
}

func TestWithTerminal(t *testing.T) {
	s, _ := applyOpts(t, WithTerminal(true))
	if !s.Process.Terminal {
		t.Fatal("terminal not set")
	}
}

// testRootfs writes an image /etc/passwd and /etc/group.
func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
	group := "root:x:0:\napp:x:1001:app\nwheel:x:10:app,other\naudio:x:29:app\nvideo:x:44:other\n"
	for name, body := range map[string]string{"etc/passwd": passwd, "etc/group": group} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestWithUser(t *testing.T) {
	root := testRootfs(t)
	for _, tc := range []struct {
		user     string
		uid, gid uint32
	}{
		{"", 0, 0},
		{"0", 0, 0},
		{"1000", 1000, 1001},     // primary gid from /etc/passwd
		{"4242", 4242, 0},        // not listed: gid 0
		{"app", 1000, 1001},      // by name
		{"app:10", 1000, 10},     // name:gid
		{"1000:wheel", 1000, 10}, // uid:group
		{"5:7", 5, 7},
	} {
		s, err := applyOpts(t, WithUser(context.Background(), root, tc.user))
		if err != nil {
			t.Fatalf("%q: %v", tc.user, err)
		}
		u := s.Process.User
		if u.UID != tc.uid || u.GID != tc.gid || !reflect.DeepEqual(u.AdditionalGids, []uint32{tc.gid}) {
			t.Errorf("%q: got %+v, want uid %d gid %d", tc.user, u, tc.uid, tc.gid)
		}
	}
	for _, bad := range []string{"nosuch", "app:nogroup", "a:b:c", ":5"} {
		_, err := applyOpts(t, WithUser(context.Background(), root, bad))
		wantInvalid(t, err, "")
	}
	// Numeric users need no rootfs at all.
	if _, err := applyOpts(t, WithUser(context.Background(), "", "7:8")); err != nil {
		t.Fatal(err)
	}
}

func TestWithUserCannotEscapeRootfs(t *testing.T) {
	// An image whose /etc/passwd links to the host's must not make berth
	// read the host file.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("hostonly:x:77:77::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	_, err := applyOpts(t, WithUser(context.Background(), root, "hostonly"))
	if err == nil {
		t.Fatal("resolved a user through a symlink out of the rootfs")
	}
	// Relative links that climb out are stopped too.
	if err := os.Remove(filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(filepath.Join(root, "etc"), filepath.Join(outside, "passwd"))
	if err := os.Symlink(rel, filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := applyOpts(t, WithUser(context.Background(), root, "hostonly")); err == nil {
		t.Fatal("resolved a user through a relative symlink out of the rootfs")
	}
}

func TestAdditionalGIDs(t *testing.T) {
	root := testRootfs(t)
	for _, tc := range []struct {
		name  string
		user  string
		merge bool
		supp  []int64
		want  []uint32
	}{
		{"merge by name", "app", true, nil, []uint32{10, 29, 1001}},
		{"merge by uid", "1000", true, []int64{5000}, []uint32{10, 29, 1001, 5000}},
		{"strict ignores /etc/group", "app", false, []int64{5000, 5000}, []uint32{1001, 5000}},
		{"unknown uid has no memberships", "4242", true, nil, []uint32{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Opt{WithUser(context.Background(), root, tc.user)}
			if tc.merge {
				opts = append(opts, WithAdditionalGIDs(context.Background(), root, userPart(tc.user)))
			}
			opts = append(opts, withCRISupplementalGroups(tc.supp))
			s, err := applyOpts(t, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.User.AdditionalGids, tc.want) {
				t.Fatalf("gids = %v, want %v", s.Process.User.AdditionalGids, tc.want)
			}
		})
	}
	_, err := applyOpts(t, withCRISupplementalGroups([]int64{-1}))
	wantInvalid(t, err, "supplemental_groups")
}

func TestUserString(t *testing.T) {
	i := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	for _, tc := range []struct {
		sc    *runtimeapi.LinuxContainerSecurityContext
		image string
		want  string
	}{
		{nil, "app", "app"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i(1000)}, "app", "1000"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i(1000), RunAsGroup: i(5)}, "", "1000:5"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i(1), RunAsUsername: "app"}, "", "app"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "app", RunAsGroup: i(5)}, "", "app:5"},
	} {
		u, err := parseUser(tc.sc)
		if got := u.userString(tc.image); err != nil || got != tc.want {
			t.Errorf("got %q, %v; want %q", got, err, tc.want)
		}
	}
	for sc, mention := range map[*runtimeapi.LinuxContainerSecurityContext]string{
		{RunAsGroup: i(5)}:                   "run_as_group",
		{RunAsUser: i(-1)}:                   "run_as_user",
		{RunAsUser: i(1 << 32)}:              "run_as_user",
		{RunAsUser: i(1), RunAsGroup: i(-1)}: "run_as_group",
		{RunAsUsername: "a:b"}:               "run_as_username",
	} {
		_, err := parseUser(sc)
		wantInvalid(t, err, mention)
	}
}

func mountByDest(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestWithMounts(t *testing.T) {
	host := fakeHost{paths: map[string]bool{"/data": true, "/shm": true, "/cfg": true, "/sub": true}}
	o := MountOptions{Stat: host.Stat}
	mounts := []*runtimeapi.Mount{
		{ContainerPath: "/data/sub", HostPath: "/sub", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		{ContainerPath: "/data", HostPath: "/data", Readonly: true, SelinuxRelabel: true},
		{ContainerPath: "/dev/shm", HostPath: "/shm", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/etc/cfg/", HostPath: "/cfg"},
	}
	s, err := applyOpts(t, withCRIMounts(mounts, o))
	if err != nil {
		t.Fatal(err)
	}
	if m := mountByDest(s, "/data"); m == nil || !reflect.DeepEqual(m.Options, []string{"rbind", "rprivate", "ro"}) || m.Type != "bind" {
		t.Fatalf("/data mount = %+v", m)
	}
	if m := mountByDest(s, "/data/sub"); m == nil || !slices.Contains(m.Options, "rslave") || !slices.Contains(m.Options, "rw") {
		t.Fatalf("/data/sub mount = %+v", m)
	}
	if m := mountByDest(s, "/etc/cfg"); m == nil {
		t.Fatal("container path not cleaned")
	}
	// The CRI /dev/shm replaces the default tmpfs one.
	n := 0
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			n++
			if m.Source != "/shm" || !slices.Contains(m.Options, "rshared") {
				t.Fatalf("/dev/shm = %+v", m)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d /dev/shm mounts", n)
	}
	if s.Linux.RootfsPropagation != "rshared" {
		t.Fatalf("rootfs propagation %q", s.Linux.RootfsPropagation)
	}
	// Parents before children.
	pos := map[string]int{}
	for i, m := range s.Mounts {
		pos[m.Destination] = i
	}
	for _, pair := range [][2]string{{"/data", "/data/sub"}, {"/dev", "/dev/shm"}, {"/sys", "/dev/shm"}} {
		if pos[pair[0]] > pos[pair[1]] {
			t.Fatalf("%s mounted after %s: %v", pair[0], pair[1], s.Mounts)
		}
	}
}

func TestWithMountsSysUnderCRI(t *testing.T) {
	// A CRI mount of /sys must come before the default /sys/fs/cgroup, or it
	// would hide it.
	host := fakeHost{paths: map[string]bool{"/sys": true}}
	s, err := applyOpts(t, WithCgroupMount(), withCRIMounts([]*runtimeapi.Mount{{ContainerPath: "/sys", HostPath: "/sys"}}, MountOptions{Stat: host.Stat}))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range s.Mounts {
		order = append(order, m.Destination)
	}
	if slices.Index(order, "/sys") > slices.Index(order, "/sys/fs/cgroup") {
		t.Fatalf("order %v", order)
	}
	if mountByDest(s, "/sys").Type != "bind" {
		t.Fatal("CRI /sys did not replace the sysfs default")
	}
}

func TestWithMountsDevReplacesDevDefaults(t *testing.T) {
	host := fakeHost{paths: map[string]bool{"/dev": true}}
	s, err := applyOpts(t, withCRIMounts([]*runtimeapi.Mount{{ContainerPath: "/dev", HostPath: "/dev"}}, MountOptions{Stat: host.Stat}))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Mounts {
		if strings.HasPrefix(m.Destination, "/dev/") {
			t.Fatalf("default %s kept under a CRI /dev", m.Destination)
		}
	}
}

func TestWithMountsErrors(t *testing.T) {
	host := fakeHost{paths: map[string]bool{"/ok": true}}
	for _, tc := range []struct {
		name    string
		m       *runtimeapi.Mount
		rro     bool
		mention string
	}{
		{"missing host path", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/nope"}, false, "/nope"},
		{"relative container path", &runtimeapi.Mount{ContainerPath: "x", HostPath: "/ok"}, false, "container_path"},
		{"relative host path", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "ok"}, false, "host_path"},
		{"rro without ro", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/ok", RecursiveReadOnly: true}, true, "recursive_read_only"},
		{"rro unsupported", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/ok", Readonly: true, RecursiveReadOnly: true}, false, "does not support"},
		{"rro needs private", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/ok", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, true, "private"},
		{"image volume", &runtimeapi.Mount{ContainerPath: "/x", Image: &runtimeapi.ImageSpec{Image: "busybox"}}, false, "image"},
		{"idmap", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/ok", UidMappings: []*runtimeapi.IDMapping{{Length: 1}}}, false, "id-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := applyOpts(t, withCRIMounts([]*runtimeapi.Mount{tc.m}, MountOptions{Stat: host.Stat, RecursiveReadOnlyMounts: tc.rro}))
			wantInvalid(t, err, tc.mention)
		})
	}
	s, err := applyOpts(t, withCRIMounts([]*runtimeapi.Mount{{ContainerPath: "/x", HostPath: "/ok", Readonly: true, RecursiveReadOnly: true}},
		MountOptions{Stat: host.Stat, RecursiveReadOnlyMounts: true}))
	if err != nil {
		t.Fatal(err)
	}
	if m := mountByDest(s, "/x"); !reflect.DeepEqual(m.Options, []string{"rbind", "rprivate", "rro"}) {
		t.Fatalf("rro options %v", m.Options)
	}
	// A stat failure other than "missing" is not the user's fault.
	failing := MountOptions{Stat: func(string) error { return errors.New("EIO") }}
	_, err = applyOpts(t, withCRIMounts([]*runtimeapi.Mount{{ContainerPath: "/x", HostPath: "/ok"}}, failing))
	if err == nil || errdefs.IsInvalid(err) {
		t.Fatalf("want a plain error, got %v", err)
	}
}

func TestPodFileMounts(t *testing.T) {
	in := &ContainerInput{
		Container: &Container{Config: &runtimeapi.ContainerConfig{
			Mounts: []*runtimeapi.Mount{{ContainerPath: "/etc/hosts", HostPath: "/kubelet/hosts"}},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				ReadonlyRootfs:   true,
				NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE},
			}},
		}},
		HostsPath: "/pod/hosts", ResolvPath: "/pod/resolv", HostnamePath: "/pod/hostname", ShmPath: "/pod/shm",
	}
	got := map[string]specs.Mount{}
	for _, m := range podFileMounts(in) {
		got[m.Destination] = m
	}
	if _, ok := got["/etc/hosts"]; ok {
		t.Fatal("pod /etc/hosts mounted over kubelet's")
	}
	if m, ok := got["/etc/resolv.conf"]; !ok || !slices.Contains(m.Options, "ro") {
		t.Fatalf("resolv.conf %+v (want read-only with a read-only rootfs)", m)
	}
	if m, ok := got["/dev/shm"]; !ok || m.Source != "/dev/shm" || !slices.Contains(m.Options, "rw") {
		t.Fatalf("host IPC shm %+v", m)
	}
}

func TestNamespaces(t *testing.T) {
	pod := SandboxNamespaces{Net: "/ns/net", IPC: "/ns/ipc", UTS: "/ns/uts", PID: "/ns/pid"}
	type nsmap map[specs.LinuxNamespaceType]string
	hostNet := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}
	for _, tc := range []struct {
		name string
		pod  *runtimeapi.NamespaceOption // nil: the same as o
		o    *runtimeapi.NamespaceOption
		ns   SandboxNamespaces
		want nsmap
	}{
		{"pod defaults", nil, &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}, pod,
			nsmap{"mount": "", "network": "/ns/net", "uts": "/ns/uts", "ipc": "/ns/ipc", "pid": ""}},
		{"shared pid", nil, &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}, pod,
			nsmap{"mount": "", "network": "/ns/net", "uts": "/ns/uts", "ipc": "/ns/ipc", "pid": "/ns/pid"}},
		{"host everything", nil, &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE},
			SandboxNamespaces{}, nsmap{"mount": ""}},
		{"target pid", nil, &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "c1"}, pod,
			nsmap{"mount": "", "network": "/ns/net", "uts": "/ns/uts", "ipc": "/ns/ipc", "pid": "/target/pid"}},
		// critest leaves the container's options empty in host-network pods:
		// network and IPC follow the pod.
		{"host network pod, container options empty", hostNet, &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			SandboxNamespaces{}, nsmap{"mount": "", "pid": ""}},
		{"host pid pod", &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}, &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			pod, nsmap{"mount": "", "network": "/ns/net", "uts": "/ns/uts", "ipc": "/ns/ipc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			podOpts := tc.pod
			if podOpts == nil {
				podOpts = tc.o
			}
			opt, err := criNamespaces(podOpts, tc.o, tc.ns, "/target/pid")
			if err != nil {
				t.Fatal(err)
			}
			s, err := applyOpts(t, opt)
			if err != nil {
				t.Fatal(err)
			}
			got := nsmap{}
			for _, ns := range s.Linux.Namespaces {
				got[ns.Type] = ns.Path
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("namespaces %v, want %v", got, tc.want)
			}
			if s.Hostname != "" {
				t.Fatal("hostname set while joining a UTS namespace")
			}
		})
	}
	for _, tc := range []struct {
		o  *runtimeapi.NamespaceOption
		ns SandboxNamespaces
	}{
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}, SandboxNamespaces{Net: "/n", IPC: "/i", UTS: "/u"}},
		{&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}, SandboxNamespaces{IPC: "/i", UTS: "/u"}},
	} {
		if _, err := criNamespaces(tc.o, tc.o, tc.ns, ""); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("%v: want FailedPrecondition, got %v", tc.o, err)
		}
	}
	_, err := criNamespaces(nil, &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}}, pod, "")
	wantInvalid(t, err, "userns")
	_, err = criNamespaces(nil, &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET}, pod, "")
	wantInvalid(t, err, "target_id")
}

func TestWithHostname(t *testing.T) {
	s, err := applyOpts(t, WithNamespace(specs.UTSNamespace, ""), WithHostname("pod"))
	if err != nil || s.Hostname != "pod" {
		t.Fatalf("hostname %q, %v", s.Hostname, err)
	}
	if _, err := applyOpts(t, WithNamespace(specs.UTSNamespace, "/ns/uts"), WithHostname("pod")); err == nil {
		t.Fatal("hostname accepted while joining a UTS namespace")
	}
}

func TestWithResources(t *testing.T) {
	r := &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
		CpusetCpus: "0-1", CpusetMems: "0",
		MemoryLimitInBytes: 1 << 28,
		HugepageLimits:     []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:            map[string]string{"memory.high": "1000000"},
	}
	s, err := applyOpts(t, withCRIResources(r, ResourceOptions{SwapLimit: true, Hugetlb: true, PidsLimit: 1024}))
	if err != nil {
		t.Fatal(err)
	}
	res := s.Linux.Resources
	if *res.CPU.Period != 100000 || *res.CPU.Quota != 50000 || *res.CPU.Shares != 512 || res.CPU.Cpus != "0-1" || res.CPU.Mems != "0" {
		t.Fatalf("cpu %+v", res.CPU)
	}
	if *res.Memory.Limit != 1<<28 || *res.Memory.Swap != 1<<28 {
		t.Fatalf("memory %+v: swap must equal the limit when unset", res.Memory)
	}
	if len(res.HugepageLimits) != 1 || res.Unified["memory.high"] != "1000000" || *res.Pids.Limit != 1024 {
		t.Fatalf("resources %+v", res)
	}
	r.MemorySwapLimitInBytes = 1 << 29
	s, _ = applyOpts(t, withCRIResources(r, ResourceOptions{SwapLimit: true}))
	if *s.Linux.Resources.Memory.Swap != 1<<29 || s.Linux.Resources.HugepageLimits != nil || s.Linux.Resources.Pids != nil {
		t.Fatalf("resources %+v", s.Linux.Resources)
	}
	s, _ = applyOpts(t, withCRIResources(r, ResourceOptions{}))
	if s.Linux.Resources.Memory.Swap != nil {
		t.Fatal("swap set on a host that cannot limit it")
	}
	_, err = applyOpts(t, withCRIResources(&runtimeapi.LinuxContainerResources{CpuShares: -1}, ResourceOptions{}))
	wantInvalid(t, err, "cpu_shares")
}

func TestWithOOMScoreAdj(t *testing.T) {
	min := -500
	for _, tc := range []struct {
		adj  int64
		min  *int
		want int
	}{{1000, nil, 1000}, {-997, nil, -997}, {-997, &min, -500}, {200, &min, 200}} {
		s, err := applyOpts(t, WithOOMScoreAdj(&runtimeapi.LinuxContainerResources{OomScoreAdj: tc.adj}, tc.min))
		if err != nil || *s.Process.OOMScoreAdj != tc.want {
			t.Errorf("adj %d: got %v, %v; want %d", tc.adj, s.Process.OOMScoreAdj, err, tc.want)
		}
	}
	_, err := applyOpts(t, withCRIResources(&runtimeapi.LinuxContainerResources{OomScoreAdj: 1001}, ResourceOptions{}))
	wantInvalid(t, err, "oom_score_adj")
}

func TestDevices(t *testing.T) {
	host := fakeHost{devices: map[string][]specs.LinuxDevice{
		"/dev/fuse": {testDev("/dev/fuse", "c", 10, 229)},
		"/dev/dri":  {testDev("/dev/dri/card0", "c", 226, 0), testDev("/dev/dri/renderD128", "c", 226, 128)},
	}}
	s, err := applyOpts(t, WithDefaultDeviceRules(), withCRIDevices([]*runtimeapi.Device{
		{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rw"},
		{ContainerPath: "/dev/gpu", HostPath: "/dev/dri", Permissions: "rwm"},
	}, host.Devices))
	if err != nil {
		t.Fatal(err)
	}
	rules := s.Linux.Resources.Devices
	if rules[0].Allow || rules[0].Access != "rwm" || rules[0].Major != nil {
		t.Fatalf("first rule must deny all: %+v", rules[0])
	}
	var paths []string
	for _, d := range s.Linux.Devices {
		paths = append(paths, d.Path)
	}
	if !reflect.DeepEqual(paths, []string{"/dev/fuse", "/dev/gpu/card0", "/dev/gpu/renderD128"}) {
		t.Fatalf("devices %v", paths)
	}
	last := rules[len(rules)-3]
	if !last.Allow || last.Access != "rw" || *last.Major != 10 || *last.Minor != 229 {
		t.Fatalf("fuse rule %+v", last)
	}
	_, err = applyOpts(t, withCRIDevices([]*runtimeapi.Device{{ContainerPath: "/dev/x", HostPath: "/dev/nope", Permissions: "rw"}}, host.Devices))
	wantInvalid(t, err, "/dev/nope")
	_, err = applyOpts(t, withCRIDevices([]*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwx"}}, host.Devices))
	wantInvalid(t, err, "permissions")
}

func TestWithCapabilities(t *testing.T) {
	all := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"}
	defaults := []string{"CAP_CHOWN", "CAP_KILL"}
	for _, tc := range []struct {
		name      string
		add, drop []string
		want      []string
	}{
		{"defaults", nil, nil, defaults},
		{"add and drop", []string{"net_admin"}, []string{"CHOWN"}, []string{"CAP_KILL", "CAP_NET_ADMIN"}},
		{"add ALL drop one", []string{"ALL"}, []string{"SYS_ADMIN"}, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"}},
		{"drop ALL add one", []string{"KILL"}, []string{"all"}, []string{"CAP_KILL"}},
		{"drop ALL", nil, []string{"ALL"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := applyOpts(t, withCRICapabilities(defaults, &runtimeapi.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop}, all))
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !reflect.DeepEqual(append([]string{}, set...), tc.want) {
					t.Fatalf("caps %v, want %v", set, tc.want)
				}
			}
			if len(c.Ambient) != 0 || len(c.Inheritable) != 0 {
				t.Fatalf("ambient %v inheritable %v", c.Ambient, c.Inheritable)
			}
		})
	}
	_, err := applyOpts(t, withCRICapabilities(defaults, &runtimeapi.Capability{AddCapabilities: []string{"SYS_MODULE"}}, all))
	wantInvalid(t, err, "bounding set")
	_, err = applyOpts(t, withCRICapabilities(defaults, &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}, all))
	wantInvalid(t, err, "unknown capability")
	s, err := applyOpts(t, withCRICapabilities(defaults, &runtimeapi.Capability{AddAmbientCapabilities: []string{"KILL"}}, all))
	if err != nil || !reflect.DeepEqual(s.Process.Capabilities.Ambient, []string{"CAP_KILL"}) {
		t.Fatalf("ambient %v, %v", s.Process.Capabilities, err)
	}
	_, err = applyOpts(t, withCRICapabilities(defaults, &runtimeapi.Capability{AddAmbientCapabilities: []string{"NET_ADMIN"}}, all))
	wantInvalid(t, err, "add_ambient_capabilities")
}

func TestWithPrivileged(t *testing.T) {
	all := []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}
	host := fakeHost{devices: map[string][]specs.LinuxDevice{"/dev": {testDev("/dev/null", "c", 1, 3), testDev("/dev/sda", "b", 8, 0)}}}
	s, err := applyOpts(t, WithCgroupMount(), WithPrivileged(all, host.Devices))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Process.Capabilities.Bounding, all) {
		t.Fatalf("caps %v", s.Process.Capabilities.Bounding)
	}
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Fatal("masked/readonly paths kept")
	}
	for _, dst := range []string{"/sys", "/sys/fs/cgroup"} {
		m := mountByDest(s, dst)
		if slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rw") {
			t.Fatalf("%s options %v", dst, m.Options)
		}
	}
	if len(s.Linux.Devices) != 2 || len(s.Linux.Resources.Devices) != 1 || !s.Linux.Resources.Devices[0].Allow {
		t.Fatalf("devices %v rules %v", s.Linux.Devices, s.Linux.Resources.Devices)
	}
	// Defaults of other specs are not modified through shared slices.
	if m := defaultMounts()[5]; !slices.Contains(m.Options, "ro") {
		t.Fatal("default sysfs options modified")
	}
	if _, err := applyOpts(t, WithPrivileged(nil, host.Devices)); err == nil {
		t.Fatal("privileged without a bounding set accepted")
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	s, _ := applyOpts(t, WithMaskedPaths(nil), WithReadonlyPaths(nil))
	if !reflect.DeepEqual(s.Linux.MaskedPaths, DefaultMaskedPaths()) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, DefaultReadonlyPaths()) {
		t.Fatal("defaults not kept")
	}
	s, _ = applyOpts(t, WithMaskedPaths([]string{"/proc/x"}), WithReadonlyPaths([]string{"/proc/y"}))
	if !reflect.DeepEqual(s.Linux.MaskedPaths, []string{"/proc/x"}) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, []string{"/proc/y"}) {
		t.Fatal("overrides not applied")
	}
	wantInvalid(t, checkAbsList("linux.security_context.masked_paths", []string{"proc"}), "masked_paths")
}

func TestNoNewPrivsAndReadonlyRootfs(t *testing.T) {
	s, _ := applyOpts(t, WithNoNewPrivileges(true), WithNoNewPrivileges(false), WithReadonlyRootfs(true))
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Fatal("flags not set or cleared by a later option")
	}
	s, _ = applyOpts(t, WithNoNewPrivileges(false), WithReadonlyRootfs(false))
	if s.Process.NoNewPrivileges || s.Root.Readonly {
		t.Fatal("flags set by default")
	}
}

func TestCheckSysctls(t *testing.T) {
	pod := func(hostNet, hostIPC bool, sysctls map[string]string) *runtimeapi.PodSandboxConfig {
		ns := &runtimeapi.NamespaceOption{}
		if hostNet {
			ns.Network = runtimeapi.NamespaceMode_NODE
		}
		if hostIPC {
			ns.Ipc = runtimeapi.NamespaceMode_NODE
		}
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{
			Sysctls:         sysctls,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns},
		}}
	}
	ok := map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "0",
		"net/ipv4/ping_group_range":           "0 2147483647",
		"kernel.shmmax":                       "1000000",
		"kernel.msgmax":                       "8192",
		"kernel.sem":                          "250 32000 100 128",
		"fs.mqueue.msg_max":                   "20",
	}
	if _, err := checkSysctls(pod(false, false, ok)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		hostNet, hostIPC bool
		k, v             string
	}{
		{"CVE-2022-0811 plus", false, false, "kernel.shm_rmid_forced", "1+kernel.core_pattern=|/evil"},
		{"equals in value", false, false, "net.ipv4.ip_forward", "1=2"},
		{"newline in value", false, false, "net.ipv4.ip_forward", "1\nkernel.x"},
		{"not namespaced", false, false, "kernel.core_pattern", "|/evil"},
		{"vm", false, false, "vm.overcommit_memory", "1"},
		{"net with host network", true, false, "net.ipv4.ip_forward", "1"},
		{"ipc with host ipc", false, true, "kernel.shmmax", "1"},
		{"dotdot", false, false, "net..ipv4", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkSysctls(pod(tc.hostNet, tc.hostIPC, map[string]string{tc.k: tc.v}))
			wantInvalid(t, err, "sysctls")
		})
	}
	s, _ := applyOpts(t, WithSysctls(dottedSysctls(map[string]string{"net/ipv4/ping_group_range": "0 1"})))
	if s.Linux.Sysctl["net.ipv4.ping_group_range"] != "0 1" {
		t.Fatalf("sysctl %v", s.Linux.Sysctl)
	}
}

func TestWithSeccomp(t *testing.T) {
	custom := `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}`
	host := fakeHost{profiles: map[string]string{"/profiles/custom.json": custom, "/profiles/bad.json": "{"}}
	rd := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	s, err := applyOpts(t, withCRISeccomp(rd, false, host.ReadFile))
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatalf("default profile %+v", s.Linux.Seccomp)
	}
	if s, _ := applyOpts(t, withCRISeccomp(rd, true, host.ReadFile)); s.Linux.Seccomp != nil {
		t.Fatal("privileged container got seccomp")
	}
	for _, p := range []*runtimeapi.SecurityProfile{nil, {ProfileType: runtimeapi.SecurityProfile_Unconfined}} {
		if s, _ := applyOpts(t, withCRISeccomp(p, false, host.ReadFile)); s.Linux.Seccomp != nil {
			t.Fatalf("%v: seccomp set", p)
		}
	}
	s, err = applyOpts(t, withCRISeccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/custom.json"}, false, host.ReadFile))
	if err != nil || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Fatalf("localhost profile %+v, %v", s.Linux.Seccomp, err)
	}
	for _, tc := range []struct {
		p       *runtimeapi.SecurityProfile
		mention string
	}{
		{&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/missing.json"}, "/profiles/missing.json"},
		{&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/bad.json"}, "bad.json"},
		{&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "relative.json"}, "absolute"},
		{&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault, LocalhostRef: "/x"}, "localhost_ref"},
	} {
		_, err := applyOpts(t, withCRISeccomp(tc.p, false, host.ReadFile))
		wantInvalid(t, err, tc.mention)
	}
}

func TestSeccompLegacyAndDefault(t *testing.T) {
	for _, tc := range []struct {
		legacy string
		def    bool
		want   *runtimeapi.SecurityProfile
	}{
		{"", false, nil},
		{"", true, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}},
		{"unconfined", true, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}},
		{"docker/default", false, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}},
		{"localhost//p.json", false, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/p.json"}},
	} {
		got, err := seccompProfileFrom(nil, tc.legacy)
		if got == nil && tc.def {
			got = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		}
		if err != nil || got.GetProfileType() != tc.want.GetProfileType() || got.GetLocalhostRef() != tc.want.GetLocalhostRef() || (got == nil) != (tc.want == nil) {
			t.Errorf("%q: got %v, %v", tc.legacy, got, err)
		}
	}
	_, err := seccompProfileFrom(nil, "bogus")
	wantInvalid(t, err, "seccomp_profile_path")
}

func TestWithAppArmor(t *testing.T) {
	rd := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	local := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost/my-profile"}
	unconfined := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	for _, tc := range []struct {
		name       string
		p          *runtimeapi.SecurityProfile
		privileged bool
		want       string
	}{
		{"unset gets default", nil, false, "berth-default"},
		{"runtime default", rd, false, "berth-default"},
		{"privileged default", rd, true, ""},
		{"localhost", local, true, "my-profile"},
		{"unconfined", unconfined, false, ""},
	} {
		s, err := applyOpts(t, withCRIAppArmor(tc.p, tc.privileged, true, "berth-default"))
		if err != nil || s.Process.ApparmorProfile != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, s.Process.ApparmorProfile, err, tc.want)
		}
	}
	// Without AppArmor on the host: refused unless unconfined or unset.
	for _, p := range []*runtimeapi.SecurityProfile{rd, local} {
		_, err := applyOpts(t, withCRIAppArmor(p, false, false, ""))
		wantInvalid(t, err, "AppArmor is not enabled")
	}
	for _, p := range []*runtimeapi.SecurityProfile{nil, unconfined} {
		if s, err := applyOpts(t, withCRIAppArmor(p, false, false, "")); err != nil || s.Process.ApparmorProfile != "" {
			t.Fatalf("%v: %v", p, err)
		}
	}
	// AppArmor on but the default profile failed to load: RuntimeDefault
	// (or unset) is refused rather than run unconfined.
	for _, p := range []*runtimeapi.SecurityProfile{nil, rd} {
		_, err := applyOpts(t, withCRIAppArmor(p, false, true, ""))
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not loaded") {
			t.Errorf("%v without a loaded default: %v", p, err)
		}
	}
	if s, err := applyOpts(t, withCRIAppArmor(local, false, true, "")); err != nil || s.Process.ApparmorProfile != "my-profile" {
		t.Errorf("localhost without a loaded default: %q %v", s.Process.ApparmorProfile, err)
	}
}

func TestCheckSELinux(t *testing.T) {
	opts := &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}
	// SELinux off: accepted (and logged by the caller), as containerd and CRI-O do.
	if err := CheckSELinux("f", opts, false); err != nil {
		t.Fatal(err)
	}
	// SELinux on: refused, naming the field and the labels.
	err := CheckSELinux("linux.security_context.selinux_options", opts, true)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "selinux_options") || !strings.Contains(err.Error(), "container_t") {
		t.Fatalf("SELinux on: %v", err)
	}
	// No labels asked for: fine either way.
	for _, o := range []*runtimeapi.SELinuxOption{nil, {}} {
		if err := CheckSELinux("f", o, true); err != nil || SELinuxRequested(o) {
			t.Fatalf("%v: %v", o, err)
		}
	}
	// Through the container spec.
	in := kubeletContainer()
	in.Config.Linux.SecurityContext.SelinuxOptions = opts
	in.Host.SELinuxEnabled = true
	if _, err := generate(context.Background(), in); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("spec with SELinux on: %v", err)
	}
	in.Host.SELinuxEnabled = false
	s, err := generate(context.Background(), in)
	if err != nil || s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
		t.Fatalf("spec with SELinux off: %v", err)
	}
}

func TestWithAnnotations(t *testing.T) {
	s, _ := applyOpts(t, WithAnnotations(map[string]string{"a": "1", AnnotationContainerType: "forged"}), WithAnnotations(map[string]string{AnnotationContainerType: ContainerTypeContainer}))
	if s.Annotations["a"] != "1" || s.Annotations[AnnotationContainerType] != ContainerTypeContainer {
		t.Fatalf("annotations %v", s.Annotations)
	}
}

func TestCapsFromMask(t *testing.T) {
	got := CapsFromMask(1<<0 | 1<<21 | 1<<40 | 1<<63)
	if !reflect.DeepEqual(got, []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"}) {
		t.Fatalf("caps %v", got)
	}
	mask, err := host.BoundingCapabilities()
	if caps := CapsFromMask(mask); err != nil || len(caps) == 0 {
		t.Fatalf("bounding caps %v, %v", caps, err)
	}
}

func TestOSHostDevices(t *testing.T) {
	devs, err := OSHost{}.Devices("/dev/null")
	if err != nil || len(devs) != 1 || devs[0].Type != "c" || devs[0].Major != 1 || devs[0].Minor != 3 {
		t.Fatalf("/dev/null = %+v, %v", devs, err)
	}
	all, err := OSHost{}.Devices("/dev")
	if err != nil || len(all) == 0 {
		t.Fatalf("/dev: %d devices, %v", len(all), err)
	}
	for _, d := range all {
		if strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/console" {
			t.Fatalf("per-container device %s listed", d.Path)
		}
	}
	if _, err := (OSHost{}).Devices("/nonexistent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing device error %v", err)
	}
	if err := (OSHost{}).Stat("/nonexistent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat error %v", err)
	}
}

// The helpers below check CRI input as ValidateContainer does and apply the
// result, so the option tests cover both halves.

func withCRIMounts(mounts []*runtimeapi.Mount, o MountOptions) Opt {
	return func(s *specs.Spec) error {
		m, _, prop, err := bindMounts(mounts, o)
		if err != nil {
			return err
		}
		return Apply(s, WithMounts(m), WithRootfsPropagation(prop))
	}
}

func withCRIDevices(devices []*runtimeapi.Device, lookup DeviceLookup) Opt {
	return func(s *specs.Spec) error {
		d, err := resolveDevices(devices, lookup)
		if err != nil {
			return err
		}
		return WithDevices(d)(s)
	}
}

func withCRICapabilities(defaults []string, c *runtimeapi.Capability, all []string) Opt {
	return func(s *specs.Spec) error {
		caps, err := resolveCapabilities(defaults, c, all)
		if err != nil {
			return err
		}
		return WithCapabilities(caps)(s)
	}
}

func withCRISupplementalGroups(groups []int64) Opt {
	return func(s *specs.Spec) error {
		gids, err := supplementalGroups(groups)
		if err != nil {
			return err
		}
		return WithSupplementalGroups(gids)(s)
	}
}

func withCRISeccomp(p *runtimeapi.SecurityProfile, privileged bool, readFile func(string) ([]byte, error)) Opt {
	return func(s *specs.Spec) error {
		if privileged {
			return WithSeccomp(Seccomp{Type: runtimeapi.SecurityProfile_Unconfined})(s)
		}
		sc, err := resolveSeccomp(p, readFile)
		if err != nil {
			return err
		}
		return WithSeccomp(sc)(s)
	}
}

func withCRIAppArmor(p *runtimeapi.SecurityProfile, privileged, enabled bool, defaultProfile string) Opt {
	return func(s *specs.Spec) error {
		name, err := resolveAppArmor(p, privileged, enabled, defaultProfile)
		if err != nil {
			return err
		}
		return WithAppArmor(name)(s)
	}
}

func withCRIResources(r *runtimeapi.LinuxContainerResources, o ResourceOptions) Opt {
	return func(s *specs.Spec) error {
		if err := checkResources(r); err != nil {
			return err
		}
		return WithResources(r, o)(s)
	}
}

// criNamespaces checks namespace options as ValidatePod and
// ValidateContainer do (pod nil: the container's own) and places the
// container.
func criNamespaces(podOpts, o *runtimeapi.NamespaceOption, ns SandboxNamespaces, target string) (Opt, error) {
	if podOpts == nil {
		podOpts = o
	}
	if err := checkPodNamespaces(podOpts); err != nil {
		return nil, err
	}
	pod := ValidatedPod(&runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: podOpts}}})
	pid, err := checkContainerNamespaces(pod, o)
	if err != nil {
		return nil, err
	}
	return containerNamespaces(pod, pid, ns, target, nil)
}
