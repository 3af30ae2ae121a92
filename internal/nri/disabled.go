package nri

import (
	"context"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Disabled is the API when NRI is off: every call returns at once, leaves
// specs untouched and asks nothing of the Domain.
type Disabled struct{}

var _ API = Disabled{}

func (Disabled) Enabled() bool                                    { return false }
func (Disabled) Start(Domain) error                               { return nil }
func (Disabled) Stop()                                            {}
func (Disabled) RunPodSandbox(context.Context, *Pod) error        { return nil }
func (Disabled) StopPodSandbox(context.Context, *Pod) error       { return nil }
func (Disabled) RemovePodSandbox(context.Context, *Pod) error     { return nil }
func (Disabled) PostUpdatePodSandbox(context.Context, *Pod) error { return nil }
func (Disabled) UpdatePodSandbox(context.Context, *Pod, *runtimeapi.LinuxContainerResources, *runtimeapi.LinuxContainerResources) error {
	return nil
}
func (Disabled) CreateContainer(context.Context, *Pod, *Container, *specs.Spec) (*api.ContainerAdjustment, Followup, error) {
	return nil, Followup{}, nil
}
func (Disabled) UndoCreateContainer(context.Context, *Pod, *Container)       {}
func (Disabled) PostCreateContainer(context.Context, *Pod, *Container) error { return nil }
func (Disabled) StartContainer(context.Context, *Pod, *Container) error      { return nil }
func (Disabled) PostStartContainer(context.Context, *Pod, *Container) error  { return nil }
func (Disabled) PostUpdateContainer(context.Context, *Pod, *Container) error { return nil }
func (Disabled) StopContainer(context.Context, *Pod, *Container) (Followup, error) {
	return Followup{}, nil
}
func (Disabled) ContainerExited(context.Context, *Pod, *Container)       {}
func (Disabled) RemoveContainer(context.Context, *Pod, *Container) error { return nil }
func (Disabled) Apply(context.Context, Followup) error                   { return nil }
func (Disabled) UpdateContainer(context.Context, *Pod, *Container, *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, Followup, error) {
	return nil, Followup{}, nil
}
func (Disabled) BlockPluginSync() func() { return func() {} }
