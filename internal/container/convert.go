package container

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/oci"
)

func imageInfo(img *image.Image, requested string) oci.ImageInfo {
	return oci.ImageInfo{
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
