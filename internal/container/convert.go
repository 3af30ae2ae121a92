package container

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/spec"
)

func imageInfo(img *image.Image, requested string) spec.ImageInfo {
	return spec.ImageInfo{
		Name:       requested,
		ID:         img.ID,
		Entrypoint: img.Config.Config.Entrypoint,
		Cmd:        img.Config.Config.Cmd,
		Env:        img.Config.Config.Env,
		WorkingDir: img.Config.Config.WorkingDir,
		User:       img.Config.Config.User,
		StopSignal: img.Config.Config.StopSignal,
	}
}

// stopSignal is the signal StopContainer sends first: the CRI config's
// stop_signal, else the image's StopSignal, else (at stop) SIGTERM. It is
// kept by name, as Docker and containerd keep it.
func stopSignal(v *spec.Container, img *image.Image) string {
	if v.StopSignal != "" {
		return v.StopSignal
	}
	return img.Config.Config.StopSignal
}

// CRIStopSignal is the signal Stop sends first, whoever chose it, as
// ContainerStatus.stop_signal reports it.
func (c *Container) CRIStopSignal() runtimeapi.Signal {
	return spec.SignalToCRI(spec.StopSignal(c.StopSignal))
}

// containerUser reports the identity the container runs with, which CRI
// returns in ContainerStatus.user.
func containerUser(spec *specs.Spec) *runtimeapi.ContainerUser {
	if spec == nil || spec.Process == nil {
		return nil
	}
	u := spec.Process.User
	gids := make([]int64, 0, len(u.AdditionalGids))
	for _, g := range u.AdditionalGids {
		gids = append(gids, int64(g))
	}
	return &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
		Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: gids,
	}}
}
