package container

import "github.com/berth-project/berth/internal/events"

// emit publishes a lifecycle event carrying the record as it now is. The
// bus never blocks, so callers may hold the container's lock.
func (s *Service) emit(kind events.Kind, c *Container) {
	s.cfg.Events.Publish(events.Event{Kind: kind, ContainerID: c.ID, PodID: c.PodID, Object: c})
}
