package spec

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzContainerSpec decodes a CRI ContainerConfig from arbitrary bytes,
// validates it as CreateContainer does and generates its spec on a fake
// host: no panic, and a generated spec keeps its invariants (rootfs as
// given, absolute mount destinations, a process to run).
func FuzzContainerSpec(f *testing.F) {
	base := kubeletContainer()
	seed, err := proto.Marshal(base.Config)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	priv := proto.Clone(base.Config).(*runtimeapi.ContainerConfig)
	priv.Linux.SecurityContext.Privileged = true
	priv.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"net_raw"}}
	priv.Linux.SecurityContext.RunAsUsername = "nobody"
	priv.Mounts = append(priv.Mounts, &runtimeapi.Mount{ContainerPath: "/../../x", HostPath: "/var/lib/kubelet/pods/" + testPodUID + "/etc-hosts", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL})
	priv.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/x", HostPath: "/dev/sda", Permissions: "rwm"}}
	if b, err := proto.Marshal(priv); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &runtimeapi.ContainerConfig{}
		if proto.Unmarshal(data, cfg) != nil {
			return
		}
		in := kubeletContainer()
		in.Config = cfg
		s, err := generate(context.Background(), in)
		if err != nil {
			return
		}
		if s.Root == nil || s.Root.Path != in.RootfsPath {
			t.Fatalf("root %+v", s.Root)
		}
		if s.Process == nil || len(s.Process.Args) == 0 {
			t.Fatalf("no process args: %+v", s.Process)
		}
		for _, m := range s.Mounts {
			if !strings.HasPrefix(m.Destination, "/") {
				t.Fatalf("mount destination %q is not absolute", m.Destination)
			}
		}
	})
}

// FuzzUserResolution resolves a user string against an image's
// /etc/passwd and /etc/group of arbitrary content: no panic, and a numeric
// user is always that uid.
func FuzzUserResolution(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"),
		[]byte("root:x:0:\nwheel:x:10:app,root\napp:x:1000:\n"), "app")
	f.Add([]byte("a:x:1:1\n"), []byte("g:x:5:a\n"), "a:g")
	f.Add([]byte("::::::\n:x:-1:-1\nx:x:4294967296:0\n"), []byte(":::\n"), "1000:1000")
	f.Add([]byte(strings.Repeat("u:x:1:1:"+strings.Repeat("y", 100)+"\n", 100)), []byte("g:x:1:"+strings.Repeat("u,", 1000)+"\n"), "u")
	f.Add([]byte{}, []byte{}, "")
	root := f.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, passwd, group []byte, userstr string) {
		if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), passwd, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", "group"), group, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := applyOpts(t, WithUser(context.Background(), root, userstr), WithAdditionalGIDs(context.Background(), root, userPart(userstr)))
		if err != nil {
			return
		}
		u, _, _ := strings.Cut(userstr, ":")
		if n, err := strconv.ParseUint(u, 10, 32); err == nil && s.Process.User.UID != uint32(n) {
			t.Fatalf("user %q resolved to uid %d", userstr, s.Process.User.UID)
		}
	})
}
