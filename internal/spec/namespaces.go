package spec

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// WithNamespace gives the process a namespace of type t: a new one when p
// is empty, else the one at p. It replaces any earlier entry of that type.
func WithNamespace(t specs.LinuxNamespaceType, p string) Opt {
	return func(s *specs.Spec) error {
		ensureLinux(s)
		for i := range s.Linux.Namespaces {
			if s.Linux.Namespaces[i].Type == t {
				s.Linux.Namespaces[i].Path = p
				return nil
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: p})
		return nil
	}
}

// WithoutNamespace removes namespace type t: the process stays in the
// host's (berthd's) namespace of that type.
func WithoutNamespace(t specs.LinuxNamespaceType) Opt {
	return func(s *specs.Spec) error {
		if s.Linux == nil {
			return nil
		}
		kept := s.Linux.Namespaces[:0]
		for _, ns := range s.Linux.Namespaces {
			if ns.Type != t {
				kept = append(kept, ns)
			}
		}
		s.Linux.Namespaces = kept
		return nil
	}
}

// WithHostname sets the UTS hostname. Only for a spec that creates its own
// UTS namespace: runc refuses a hostname when joining one.
func WithHostname(h string) Opt {
	return func(s *specs.Spec) error {
		if h == "" {
			return nil
		}
		if s.Linux != nil {
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == specs.UTSNamespace && ns.Path == "" {
					s.Hostname = h
					return nil
				}
			}
		}
		return fmt.Errorf("hostname %q needs a new UTS namespace in the spec", h)
	}
}

// checkContainerNamespaces checks a container's namespace options and
// returns the PID namespace mode it gets: its own, or the host's when the
// pod is on the host PID namespace.
func checkContainerNamespaces(pod *Pod, o *runtimeapi.NamespaceOption) (runtimeapi.NamespaceMode, error) {
	const field = "linux.security_context.namespace_options"
	if o.GetPid() == runtimeapi.NamespaceMode_TARGET && o.GetTargetId() == "" {
		return 0, errdefs.Invalid(field + ".target_id is required with PID namespace mode TARGET")
	}
	pid := o.GetPid()
	if pod.PID == runtimeapi.NamespaceMode_NODE {
		pid = runtimeapi.NamespaceMode_NODE
	}
	switch pid {
	case runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_TARGET:
	default:
		return 0, errdefs.Invalid(fmt.Sprintf("%s.pid: unknown mode %d", field, o.GetPid()))
	}
	// A container is in its pod's user namespace; its own options, which
	// kubelet copies from the pod's, may only say the same.
	if u := o.GetUsernsOptions(); u != nil {
		podMode := runtimeapi.NamespaceMode_NODE
		if pod.UserNS != nil {
			podMode = runtimeapi.NamespaceMode_POD
		}
		if u.GetMode() != podMode {
			return 0, errdefs.Invalid(fmt.Sprintf("%s.userns_options.mode %s: a container is in its pod's user namespace (mode %s)", field, u.GetMode(), podMode))
		}
		if pod.UserNS != nil && (len(u.GetUids()) > 0 || len(u.GetGids()) > 0) {
			if got := userNSFrom(o); got == nil || !slices.Equal(got.UIDs, pod.UserNS.UIDs) || !slices.Equal(got.GIDs, pod.UserNS.GIDs) {
				return 0, errdefs.Invalid(field + ".userns_options: the mappings differ from the pod's")
			}
		}
	}
	return pid, nil
}

// checkPodNamespaces checks the namespace modes a pod can have: network
// and IPC are the pod's own or the host's.
func checkPodNamespaces(o *runtimeapi.NamespaceOption) error {
	const field = "linux.security_context.namespace_options"
	switch o.GetNetwork() {
	case runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_POD:
	default:
		return errdefs.Invalid(fmt.Sprintf("pod %s.network: mode %s is not supported (POD or NODE)", field, o.GetNetwork()))
	}
	switch o.GetIpc() {
	case runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_POD:
	default:
		return errdefs.Invalid(fmt.Sprintf("pod %s.ipc: mode %s is not supported (POD or NODE)", field, o.GetIpc()))
	}
	return nil
}

// containerNamespaces places a container in its pod's namespaces: the
// pod's pinned net/uts/ipc (or the host's for host network/IPC) and a PID
// namespace of its own, the pod's shared one, a target container's, or the
// host's. Network and IPC follow the pod's options, whatever the container's
// say (as containerd does: clients such as critest leave the container's
// empty in host-network pods); PID follows the container's, or the host's
// when the pod is on the host PID namespace. The hostname is never set: the
// container joins the pod's UTS namespace, where the sandbox set it. The
// modes were checked by ValidatePod and ValidateContainer; what can still
// fail is a namespace the pod does not have.
//
// idmapped are mount destinations already idmapped for the pod's user
// namespace (image volumes, mapped by berth).
func containerNamespaces(pod *Pod, pid runtimeapi.NamespaceMode, ns SandboxNamespaces, target string, idmapped map[string]bool) (Opt, error) {
	var opts []Opt
	if pod.Network == runtimeapi.NamespaceMode_NODE {
		// Host network pods also use the host's UTS namespace (hostname).
		opts = append(opts, WithoutNamespace(specs.NetworkNamespace), WithoutNamespace(specs.UTSNamespace))
	} else {
		if ns.Net == "" {
			return nil, errdefs.Precondition("the pod sandbox has no network namespace to join")
		}
		if ns.UTS == "" {
			return nil, errdefs.Precondition("the pod sandbox has no UTS namespace to join")
		}
		opts = append(opts, WithNamespace(specs.NetworkNamespace, ns.Net), WithNamespace(specs.UTSNamespace, ns.UTS))
	}
	if pod.IPC == runtimeapi.NamespaceMode_NODE {
		opts = append(opts, WithoutNamespace(specs.IPCNamespace))
	} else {
		if ns.IPC == "" {
			return nil, errdefs.Precondition("the pod sandbox has no IPC namespace to join")
		}
		opts = append(opts, WithNamespace(specs.IPCNamespace, ns.IPC))
	}
	switch pid {
	case runtimeapi.NamespaceMode_POD:
		if ns.PID == "" {
			return nil, errdefs.Precondition("the pod sandbox has no shared PID namespace to join")
		}
		opts = append(opts, WithNamespace(specs.PIDNamespace, ns.PID))
	case runtimeapi.NamespaceMode_NODE:
		opts = append(opts, WithoutNamespace(specs.PIDNamespace))
	case runtimeapi.NamespaceMode_TARGET:
		if target == "" {
			return nil, errdefs.Invalid("linux.security_context.namespace_options.target_id: PID mode TARGET needs a running target container")
		}
		opts = append(opts, WithNamespace(specs.PIDNamespace, target))
	default: // CONTAINER
		opts = append(opts, WithNamespace(specs.PIDNamespace, ""))
	}
	if pod.UserNS != nil {
		if ns.User == "" {
			return nil, errdefs.Precondition("the pod sandbox has no user namespace to join")
		}
		opts = append(opts, WithUserNamespace(ns.User, pod.UserNS, idmapped))
	}
	return func(s *specs.Spec) error { return Apply(s, opts...) }, nil
}

// WithUserNamespace puts the process in the pod's user namespace at path,
// with its mappings, and idmaps every bind mount the spec has so far with
// them, so files keep their on-disk owners (a file owned by 0 on the host
// is root's inside). Mounts already idmapped (image volumes, mapped by
// berth) and non-bind mounts (proc, sysfs, tmpfs: made in the namespace)
// are left alone. Apply it after the mounts.
func WithUserNamespace(path string, u *UserNS, idmapped map[string]bool) Opt {
	return func(s *specs.Spec) error {
		if err := WithNamespace(specs.UserNamespace, path)(s); err != nil {
			return err
		}
		s.Linux.UIDMappings = slices.Clone(u.UIDs)
		s.Linux.GIDMappings = slices.Clone(u.GIDs)
		for i := range s.Mounts {
			m := &s.Mounts[i]
			if m.Type != "bind" || idmapped[m.Destination] {
				continue
			}
			m.UIDMappings = slices.Clone(u.UIDs)
			m.GIDMappings = slices.Clone(u.GIDs)
			// ridmap: the mounts below a volume are mapped too.
			m.Options = append(m.Options, "ridmap")
		}
		return nil
	}
}
