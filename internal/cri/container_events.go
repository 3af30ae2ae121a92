package cri

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/events"
)

var eventTypes = map[events.Kind]runtimeapi.ContainerEventType{
	events.ContainerCreated: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
	events.ContainerStarted: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	events.ContainerStopped: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
	events.ContainerDeleted: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams container lifecycle events, as kubelet's
// Evented PLEG consumes them, until the client goes away. A client that
// falls a whole buffer behind is cut off with ResourceExhausted: it must
// reconnect and relist, as kubelet does on any stream error. A client that
// connects shortly after berthd started first gets the exits berthd found
// at start (those that happened while it was down).
func (s *Server) GetContainerEvents(r *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	if s.Events == nil {
		return status.Error(codes.Unimplemented, "container events are not enabled in this berthd")
	}
	sub := s.Events.Subscribe(0)
	defer sub.Close()
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Events():
			if !ok {
				if !sub.Dropped() {
					return status.Error(codes.Unavailable, "berthd is shutting down; reconnect once it is back")
				}
				return status.Error(codes.ResourceExhausted, "container event stream fell too far behind and was dropped; reconnect and relist")
			}
			resp, err := s.containerEvent(ev)
			if err != nil {
				s.Log.Warn("building container event", "container", ev.ContainerID, "err", err)
				continue
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// containerEvent carries the pod's status and its containers' statuses:
// the event's container as it was right after the change, the others as
// they are now. A deleted container is no longer listed.
func (s *Server) containerEvent(ev events.Event) (*runtimeapi.ContainerEventResponse, error) {
	resp := &runtimeapi.ContainerEventResponse{
		ContainerId:        ev.ContainerID,
		ContainerEventType: eventTypes[ev.Kind],
		CreatedAt:          ev.At.UnixNano(),
	}
	if p, err := s.Sandboxes.Get(ev.PodID); err == nil {
		resp.PodSandboxStatus = podStatus(p)
	} else {
		// Removed meanwhile: what is left to say is that it is not ready.
		resp.PodSandboxStatus = &runtimeapi.PodSandboxStatus{Id: ev.PodID, State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	}
	self, _ := ev.Object.(*container.Container)
	seen := false
	for _, c := range s.Containers.List() {
		if c.PodID != ev.PodID {
			continue
		}
		if c.ID == ev.ContainerID {
			seen = true
			if self != nil {
				c = self
			}
		}
		resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(c))
	}
	if !seen && self != nil && ev.Kind != events.ContainerDeleted {
		resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(self))
	}
	return resp, nil
}
