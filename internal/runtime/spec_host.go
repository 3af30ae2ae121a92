package runtime

import "github.com/berth-project/berth/internal/spec"

// SpecHost is the host facts for specs of handler h's containers and pods:
// the node's, with what the handler changes (recursive read-only mounts,
// mount options, user namespaces, host devices for privileged containers,
// annotation allow-lists).
func SpecHost(h Handler, node spec.HostConfig) spec.HostConfig {
	host := node
	f := h.Features()
	host.RecursiveReadOnlyMounts = f.RecursiveReadOnlyMounts
	host.MountOptions = f.MountOptions
	host.UserNamespaces = f.UserNamespaces
	set := h.SpecSettings()
	host.PrivilegedWithoutHostDevices = set.PrivilegedWithoutHostDevices
	host.PodAnnotations = set.PodAnnotations
	host.ContainerAnnotations = set.ContainerAnnotations
	return host
}
