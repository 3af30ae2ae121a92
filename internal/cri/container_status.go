package cri

import (
	"context"
	"encoding/json"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
)

// ContainerStatus answers NotFound after RemoveContainer, as kubelet expects.
func (s *Server) ContainerStatus(ctx context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errdefs.Invalid("container_id is required")
	}
	c, err := s.Containers.Get(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: containerStatus(c)}
	if r.GetVerbose() {
		// Encoded here, not kept: verbose status is for people, not for
		// kubelet's polling.
		cfg, err := protojson.Marshal(c.Config)
		if err != nil {
			return nil, err
		}
		info := map[string]any{"pid": c.Pid, "sandboxID": c.PodID, "runtimeHandler": c.Runtime, "config": json.RawMessage(cfg)}
		data, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(data)}
	}
	return resp, nil
}

func containerState(c *container.Container) runtimeapi.ContainerState {
	switch c.State {
	case container.Created:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case container.Running:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func containerSummary(c *container.Container) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id:           c.ID,
		PodSandboxId: c.PodID,
		Metadata:     &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
		Image:        &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		ImageRef:     c.ImageRef,
		ImageId:      c.ImageID,
		State:        containerState(c),
		CreatedAt:    c.CreatedAt,
		Labels:       c.Labels,
		Annotations:  c.Annotations,
	}
}

// containerStatus is built from what the record holds decoded: no CRI blob
// is decoded per call.
func containerStatus(c *container.Container) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
		State:       containerState(c),
		CreatedAt:   c.CreatedAt,
		StartedAt:   c.StartedAt,
		FinishedAt:  c.FinishedAt,
		ExitCode:    c.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		ImageRef:    c.ImageRef,
		ImageId:     c.ImageID,
		Reason:      c.Reason,
		Message:     c.Message,
		Labels:      c.Labels,
		Annotations: c.Annotations,
		Mounts:      c.Config.GetMounts(),
		LogPath:     c.LogPath,
		StopSignal:  c.CRIStopSignal(),
	}
	if c.Resources != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: c.Resources}
	}
	st.User = c.User
	return st
}
