package sandbox

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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
