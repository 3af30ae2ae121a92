package cri

import runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

// Getters the CRI request messages share; a request has the ones that
// apply to it.
type (
	podIDGetter       interface{ GetPodSandboxId() string }
	containerIDGetter interface{ GetContainerId() string }
	imageGetter       interface{ GetImage() *runtimeapi.ImageSpec }
)

// appendRequestIDs adds the pod, container and image a request names to a
// log line. Only these are read, never configs or credentials (PullImage's
// auth stays out).
func appendRequestIDs(attrs []any, req any) []any {
	if r, ok := req.(podIDGetter); ok && r.GetPodSandboxId() != "" {
		attrs = append(attrs, "pod", r.GetPodSandboxId())
	}
	if r, ok := req.(containerIDGetter); ok && r.GetContainerId() != "" {
		attrs = append(attrs, "container", r.GetContainerId())
	}
	if r, ok := req.(imageGetter); ok && r.GetImage().GetImage() != "" {
		attrs = append(attrs, "image", r.GetImage().GetImage())
	}
	return attrs
}
