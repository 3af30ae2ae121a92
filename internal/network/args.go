package network

import (
	"fmt"
	"math"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/sandbox"
)

// The pod annotations kubelet's bandwidth shaping reads.
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// podIfName is the pod's interface on the main network.
const podIfName = "eth0"

// portMapping is one entry of the portMappings capability (CNI conventions).
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// bandwidth is the bandwidth capability, in bits per second and bits.
type bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// dns is the dns capability.
type dns struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// runtimeConf builds the arguments of a pod's ADD: the Kubernetes CNI_ARGS
// and the capability args (portMappings, bandwidth, dns). libcni passes a
// capability only to plugins that declare it.
func runtimeConf(p *sandbox.Sandbox, cfg *runtimeapi.PodSandboxConfig, netns string) (*libcni.RuntimeConf, error) {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       netns,
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	var ports []portMapping
	for _, pm := range cfg.GetPortMappings() {
		// Ports without a hostPort are informational: nothing to forward.
		if pm.GetHostPort() <= 0 {
			continue
		}
		ports = append(ports, portMapping{
			HostPort:      pm.GetHostPort(),
			ContainerPort: pm.GetContainerPort(),
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			HostIP:        pm.GetHostIp(),
		})
	}
	if len(ports) > 0 {
		rt.CapabilityArgs["portMappings"] = ports
	}
	bw, err := podBandwidth(cfg.GetAnnotations())
	if err != nil {
		return nil, err
	}
	if bw != nil {
		rt.CapabilityArgs["bandwidth"] = bw
	}
	if d := cfg.GetDnsConfig(); d != nil && (len(d.Servers)+len(d.Searches)+len(d.Options) > 0) {
		rt.CapabilityArgs["dns"] = dns{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	return rt, nil
}

// podBandwidth reads the bandwidth annotations (quantities such as "10M",
// in bits per second). The burst is left unbounded, as kubelet's own
// shaping did; the bandwidth plugin needs one with a rate.
func podBandwidth(ann map[string]string) (*bandwidth, error) {
	parse := func(key string) (uint64, error) {
		v, ok := ann[key]
		if !ok {
			return 0, nil
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return 0, errdefs.Invalid(fmt.Sprintf("annotation %s: %q is not a positive bandwidth such as \"10M\"", key, v))
		}
		return uint64(q.Value()), nil
	}
	in, err := parse(IngressBandwidthAnnotation)
	if err != nil {
		return nil, err
	}
	out, err := parse(EgressBandwidthAnnotation)
	if err != nil {
		return nil, err
	}
	if in == 0 && out == 0 {
		return nil, nil
	}
	bw := &bandwidth{IngressRate: in, EgressRate: out}
	if in > 0 {
		bw.IngressBurst = math.MaxUint32
	}
	if out > 0 {
		bw.EgressBurst = math.MaxUint32
	}
	return bw, nil
}
