package container

import (
	"context"

	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/spec"
)

// Runtimes is what the service needs of the runtime handlers
// (runtime.Registry): each container's handler by name, all of them to
// reconcile at start, the exits their monitors record, and the reaping of
// half-created containers whose handler is unknown.
type Runtimes interface {
	Handler(name string) (runtime.Handler, error)
	Handlers() []runtime.Handler
	WatchExits(ctx context.Context, fn func(id string)) error
	ReapOrphan(ctx context.Context, id, bundleDir string)
}

func (s *Service) runtime(name string) (runtime.Handler, error) {
	return s.cfg.Runtimes.Handler(name)
}

// hostConfig is the host facts for containers of a runtime handler: the
// node's, with what the handler changes.
func (s *Service) hostConfig(h runtime.Handler) spec.HostConfig {
	return runtime.SpecHost(h, s.cfg.Host)
}
