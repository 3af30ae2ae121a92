package cri

import (
	"context"
	"encoding/json"
	"sort"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *Server) Status(ctx context.Context, r *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			// Pods get a loopback-only network namespace until CNI is wired
			// (issue 4); that is a working network for the runtime's part.
			{Type: runtimeapi.NetworkReady, Status: true},
		}},
		RuntimeHandlers: s.runtimeHandlers(),
	}
	if r.GetVerbose() {
		cfg, err := json.Marshal(s.Config)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"config": string(cfg)}
	}
	return resp, nil
}

func (s *Server) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	names := make([]string, 0, len(s.Config.Runtimes))
	for name := range s.Config.Runtimes {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []*runtimeapi.RuntimeHandler
	for _, name := range names {
		h := s.Config.Runtimes[name]
		f := &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: h.Features.RecursiveReadOnlyMounts,
			UserNamespaces:          h.Features.UserNamespaces,
		}
		out = append(out, &runtimeapi.RuntimeHandler{Name: name, Features: f})
		if name == s.Config.DefaultRuntime {
			// The unnamed handler is the default one.
			out = append(out, &runtimeapi.RuntimeHandler{Name: "", Features: f})
		}
	}
	return out
}

func (s *Server) RuntimeConfig(ctx context.Context, r *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.Config.CgroupDriver() == "systemd" {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig takes the pod CIDR kubelet sends; CNI plugins get it
// from their own config, so there is nothing to apply yet.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, r *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	if cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		s.Log.Info("pod CIDR from kubelet", "cidr", cidr)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
