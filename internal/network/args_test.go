package network

import (
	"encoding/json"
	"math"
	"net"
	"reflect"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/sandbox"
)

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRuntimeConf(t *testing.T) {
	p := &sandbox.Sandbox{ID: "abc123", Name: "web", Namespace: "prod", UID: "uid-1"}
	cfg := &runtimeapi.PodSandboxConfig{
		PortMappings: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 9090}, // no hostPort: skipped
		},
		Annotations: map[string]string{IngressBandwidthAnnotation: "10M", EgressBandwidthAnnotation: "1Mi"},
		DnsConfig:   &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
	}
	rt, err := runtimeConf(p, cfg, "/run/berth/sandboxes/abc123/netns")
	if err != nil {
		t.Fatal(err)
	}
	if rt.ContainerID != "abc123" || rt.IfName != "eth0" || rt.NetNS != "/run/berth/sandboxes/abc123/netns" {
		t.Errorf("rt = %+v", rt)
	}
	wantArgs := [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "prod"}, {"K8S_POD_NAME", "web"},
		{"K8S_POD_INFRA_CONTAINER_ID", "abc123"}, {"K8S_POD_UID", "uid-1"},
	}
	if !reflect.DeepEqual(rt.Args, wantArgs) {
		t.Errorf("args = %v, want %v", rt.Args, wantArgs)
	}
	// What plugins see is the JSON of the capability args.
	data, err := json.Marshal(rt.CapabilityArgs)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"portMappings": []any{
			map[string]any{"hostPort": 8080.0, "containerPort": 80.0, "protocol": "tcp"},
			map[string]any{"hostPort": 5353.0, "containerPort": 53.0, "protocol": "udp", "hostIP": "127.0.0.1"},
		},
		"bandwidth": map[string]any{
			"ingressRate": 10e6, "ingressBurst": float64(math.MaxUint32),
			"egressRate": float64(1 << 20), "egressBurst": float64(math.MaxUint32),
		},
		"dns": map[string]any{"servers": []any{"10.96.0.10"}, "searches": []any{"svc.cluster.local"}, "options": []any{"ndots:5"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("capability args =\n%v\nwant\n%v", got, want)
	}
}

func TestRuntimeConfMinimal(t *testing.T) {
	rt, err := runtimeConf(&sandbox.Sandbox{ID: "x"}, &runtimeapi.PodSandboxConfig{}, "/ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.CapabilityArgs) != 0 {
		t.Errorf("capability args = %v, want none", rt.CapabilityArgs)
	}
}

func TestBandwidthAnnotationInvalid(t *testing.T) {
	for _, v := range []string{"fast", "-1M", "0"} {
		_, err := runtimeConf(&sandbox.Sandbox{ID: "x"}, &runtimeapi.PodSandboxConfig{
			Annotations: map[string]string{EgressBandwidthAnnotation: v},
		}, "/ns")
		if !errdefs.IsInvalid(err) {
			t.Errorf("%q: err = %v, want InvalidArgument", v, err)
		}
	}
}

func TestPodIPs(t *testing.T) {
	idx := func(i int) *int { return &i }
	cidr := func(s string) net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return *n
	}
	res := &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{
			{Name: "cni0"},
			{Name: "vethabc"},
			{Name: "eth0", Sandbox: "/run/netns/x"},
		},
		IPs: []*current.IPConfig{
			{Interface: idx(0), Address: cidr("10.88.0.1/16")}, // the bridge's own: not the pod's
			{Interface: idx(2), Address: cidr("fd00::5/64")},
			{Interface: idx(2), Address: cidr("10.88.0.5/16")},
		},
	}
	ips, err := podIPs(res)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ips, []string{"10.88.0.5", "fd00::5"}) {
		t.Errorf("ips = %v, want IPv4 first, pod's only", ips)
	}
	if _, err := podIPs(&current.Result{CNIVersion: "1.0.0"}); err == nil {
		t.Error("a result without IPs gave no error")
	}
}
