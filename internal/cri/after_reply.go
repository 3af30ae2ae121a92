package cri

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/stats"
)

// podStartMethods are the calls of a pod start.
var podStartMethods = map[string]bool{
	"/runtime.v1.RuntimeService/RunPodSandbox":   true,
	"/runtime.v1.RuntimeService/CreateContainer": true,
	"/runtime.v1.RuntimeService/StartContainer":  true,
}

// afterStarts is a gRPC stats handler that calls prepare once no pod
// start call (RunPodSandbox, CreateContainer, StartContainer) has been in
// flight for prepareDelay: what berthd keeps ready for the next pod start
// (pod.Service.PrepareAhead) is made again then, after the calls a client
// waits on and their replies, not while they run (a handler cannot run
// anything after its own reply). The sandbox and the spares make what
// was taken a second after the take when calls never stop.
type afterStarts struct {
	prepare func()

	mu       sync.Mutex
	inFlight int
	timer    *time.Timer
}

// prepareDelay: the End of a call comes once its status is queued for the
// connection's writer goroutine. Measured on 2 CPUs, work started at the
// End of a StartContainer still made its reply 1-3 ms later; 10 ms later
// the reply is on its way, and a kubelet's next call of the pod start
// (the next container's create) has begun.
const prepareDelay = 10 * time.Millisecond

type podStartKey struct{}

func (*afterStarts) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if podStartMethods[info.FullMethodName] {
		return context.WithValue(ctx, podStartKey{}, true)
	}
	return ctx
}

func (a *afterStarts) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if ctx.Value(podStartKey{}) == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch s.(type) {
	case *stats.Begin:
		a.inFlight++
		if a.timer != nil {
			a.timer.Stop()
		}
	case *stats.End:
		a.inFlight--
		if a.inFlight > 0 {
			return
		}
		if a.timer == nil {
			a.timer = time.AfterFunc(prepareDelay, a.prepare)
		} else {
			a.timer.Reset(prepareDelay)
		}
	}
}

func (*afterStarts) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (*afterStarts) HandleConn(context.Context, stats.ConnStats)                       {}
