package cri

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/spec"
)

// RuntimeHandlers is what Status needs of the runtime handlers
// (runtime.Registry): each handler's features, and which one is the
// default.
type RuntimeHandlers interface {
	Handlers() []runtime.Handler
	Default() string
}

// NetworkStatus is what Status needs from the pod network.
type NetworkStatus interface {
	// Status says why pods cannot get a network, or nil when they can.
	Status() error
	// Network names the network new pods join.
	Network() string
}

func (s *Server) Status(ctx context.Context, r *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	network := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if s.Network != nil {
		if err := s.Network.Status(); err != nil {
			// kubelet keeps the node NotReady and says why.
			network.Status = false
			network.Reason = "NetworkPluginNotReady"
			network.Message = err.Error()
		}
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			network,
		}},
		RuntimeHandlers: s.runtimeHandlers(),
		Features:        s.runtimeFeatures(),
	}
	if r.GetVerbose() {
		cfg, err := json.Marshal(s.Config)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"config": string(cfg)}
		if s.Network != nil {
			resp.Info["network"] = s.Network.Network()
		}
		sec, err := json.Marshal(s.Security)
		if err != nil {
			return nil, err
		}
		resp.Info["security"] = string(sec)
	}
	return resp, nil
}

// Security is what Status (verbose) reports about the node's Linux
// security modules: whether AppArmor confines containers, under which
// default profile, and whether SELinux is on (where berth refuses
// selinux_options it cannot apply).
type Security struct {
	// AppArmor is "enabled", "disabled" (the kernel has none: only
	// Unconfined or unset profiles are accepted) or "enabled, default
	// profile not loaded" (RuntimeDefault is refused).
	AppArmor               string `json:"apparmor"`
	AppArmorDefaultProfile string `json:"apparmorDefaultProfile,omitempty"`
	// SELinux is "enabled" or "disabled" (selinux_options are ignored,
	// with a log line).
	SELinux string `json:"selinux"`
}

// SecurityStatus summarises the host facts for Status.
func SecurityStatus(h spec.HostConfig) Security {
	sec := Security{AppArmor: "disabled", SELinux: "disabled", AppArmorDefaultProfile: h.AppArmorDefaultProfile}
	if h.AppArmorEnabled {
		sec.AppArmor = "enabled"
		if h.AppArmorDefaultProfile == "" {
			sec.AppArmor = "enabled, default profile not loaded"
		}
	}
	if h.SELinuxEnabled {
		sec.SELinux = "enabled"
	}
	return sec
}

// runtimeFeatures are what every handler supports. supplemental_groups_policy:
// Strict and Merge are applied and ContainerStatus.user reports the ids
// (kubelet refuses Strict pods on runtimes that do not say so).
// mount_options: Mount.mount_options are applied when every handler's
// runtime lists the mount options it accepts (its features document).
func (s *Server) runtimeFeatures() *runtimeapi.RuntimeFeatures {
	f := &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}
	if s.Runtimes != nil {
		hs := s.Runtimes.Handlers()
		f.MountOptions = len(hs) > 0
		for _, h := range hs {
			if len(h.Features().MountOptions) == 0 {
				f.MountOptions = false
			}
		}
	}
	return f
}

func (s *Server) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	if s.Runtimes == nil {
		return nil
	}
	var out []*runtimeapi.RuntimeHandler
	for _, h := range s.Runtimes.Handlers() {
		// Configured or detected at start (<runtime> features, the
		// kernel's mount_setattr and idmapped mounts).
		hf := h.Features()
		f := &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: hf.RecursiveReadOnlyMounts,
			UserNamespaces:          hf.UserNamespaces,
		}
		name := h.Name()
		out = append(out, &runtimeapi.RuntimeHandler{Name: name, Features: f})
		if name == s.Runtimes.Default() {
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
