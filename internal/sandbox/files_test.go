package sandbox

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestResolvConf(t *testing.T) {
	got := resolvConf(&runtimeapi.DNSConfig{
		Servers:  []string{"10.96.0.10", "10.96.0.11"},
		Searches: []string{"default.svc.cluster.local", "svc.cluster.local"},
		Options:  []string{"ndots:5"},
	})
	want := "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n"
	if got != want {
		t.Errorf("resolvConf:\n%s\nwant:\n%s", got, want)
	}
}

func TestHostsFileNamesPod(t *testing.T) {
	h := hostsFile("web-0")
	if !strings.Contains(h, "127.0.0.1\tlocalhost\n") || !strings.Contains(h, "\tweb-0\n") {
		t.Errorf("hosts file lacks localhost or the pod name:\n%s", h)
	}
}

func TestValidate(t *testing.T) {
	good := func() *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Hostname:     "p",
			LogDirectory: "/var/log/pods/ns_p_u",
		}
	}
	if err := Validate(good()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mutate := range map[string]func(*runtimeapi.PodSandboxConfig){
		"metadata.name": func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" },
		"metadata.uid":  func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" },
		"metadata":      func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil },
		"hostname":      func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "bad_name!" },
		"log_directory": func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "relative/dir" },
		"dns_config": func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}
		},
		"cgroup_parent": func(c *runtimeapi.PodSandboxConfig) {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "relative"}
		},
	} {
		cfg := good()
		mutate(cfg)
		err := Validate(cfg)
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want InvalidArgument naming it", name, err)
		}
	}
}
