package nri

import (
	"errors"
	"fmt"

	"github.com/containerd/nri/pkg/api"
	nrigen "github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CDIInjector resolves CDI device names and applies their edits to a spec
// (internal/cdi's Resolver.Inject has this shape).
type CDIInjector func(s *specs.Spec, devices []string) error

// errNoCDI refuses CDI devices a plugin asked for when berth has no CDI
// resolver, rather than starting the container without them.
var errNoCDI = errors.New("an NRI plugin asked for CDI devices, but CDI is not configured")

// Adjust applies a plugin adjustment to s in place with nri's own
// adjustment logic (pkg/runtime-tools/generate): annotations, env, args,
// hooks, CDI devices, device nodes, cgroups path, OOM score, I/O priority,
// scheduler, seccomp, namespaces, sysctls, net devices, memory policy,
// resources, RDT, mounts and rlimits.
func Adjust(s *specs.Spec, adj *api.ContainerAdjustment, injectCDI CDIInjector) error {
	if adj == nil {
		return nil
	}
	if s == nil {
		return errors.New("NRI adjustment: nil spec")
	}
	if injectCDI == nil {
		injectCDI = func(*specs.Spec, []string) error { return errNoCDI }
	}
	g := nrigen.SpecGenerator(newSpecGenerator(s), nrigen.WithCDIDeviceInjector(injectCDI))
	if err := g.Adjust(adj); err != nil {
		return fmt.Errorf("apply NRI adjustment: %w", err)
	}
	return nil
}
