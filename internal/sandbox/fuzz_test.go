package sandbox

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/spec"
)

// FuzzPodSandboxConfig decodes a CRI PodSandboxConfig from arbitrary
// bytes: spec.ValidatePod never panics, and a valid config's pod files carry only
// the lines berth writes (no value injects a line into resolv.conf or
// /etc/hosts).
func FuzzPodSandboxConfig(f *testing.F) {
	for _, c := range []*runtimeapi.PodSandboxConfig{
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}, Hostname: "p", LogDirectory: "/var/log/pods/ns_p_u",
			DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}}},
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "n", Namespace: "ns", Uid: "u"}, Hostname: "a.b-c",
			DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}, Searches: []string{"x"}, Options: []string{"ndots:5"}}},
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "n", Namespace: "ns", Uid: "u"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/x"}, CgroupParent: "x.slice"}},
	} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &runtimeapi.PodSandboxConfig{}
		if proto.Unmarshal(data, cfg) != nil {
			return
		}
		if _, err := spec.ValidatePod(cfg, &spec.HostConfig{}); err != nil {
			return
		}
		files, err := makePodFiles(cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.GetDnsConfig() != nil {
			lines := strings.Split(strings.TrimSuffix(files.resolv, "\n"), "\n")
			want := len(cfg.GetDnsConfig().GetServers())
			if len(cfg.GetDnsConfig().GetSearches()) > 0 {
				want++
			}
			if len(cfg.GetDnsConfig().GetOptions()) > 0 {
				want++
			}
			if files.resolv != "" && len(lines) != want {
				t.Fatalf("resolv.conf has %d lines, want %d:\n%s", len(lines), want, files.resolv)
			}
		}
		if n := strings.Count(files.hosts, "\n"); n != 6 && n != 7 {
			t.Fatalf("hosts has %d lines:\n%s", n, files.hosts)
		}
		if strings.Count(files.hostname, "\n") != 1 {
			t.Fatalf("hostname file %q", files.hostname)
		}
	})
}
