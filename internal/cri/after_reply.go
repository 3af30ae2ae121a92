package cri

import (
	"context"
	"time"

	"google.golang.org/grpc/stats"
)

// startContainerMethod is the last call of a pod start.
const startContainerMethod = "/runtime.v1.RuntimeService/StartContainer"

// afterStart is a gRPC stats handler that calls prepare once the reply to
// a StartContainer has been sent: what berthd keeps ready for the next
// pod start (pod.Service.PrepareAhead) is made again then, after the
// create and start the client waits on, and after their replies; a
// handler cannot run anything after its own reply.
type afterStart struct{ prepare func() }

type startCallKey struct{}

func (afterStart) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if info.FullMethodName == startContainerMethod {
		return context.WithValue(ctx, startCallKey{}, true)
	}
	return ctx
}

// HandleRPC sees the End of a call once its status is queued for the
// connection's writer goroutine; prepareDelay later the reply is on its
// way, and the work prepare starts no longer delays it.
func (a afterStart) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, end := s.(*stats.End); end && ctx.Value(startCallKey{}) != nil {
		time.AfterFunc(prepareDelay, a.prepare)
	}
}

// prepareDelay: measured on 2 CPUs, work started at the End itself still
// made the StartContainer reply 1-3 ms later.
const prepareDelay = 10 * time.Millisecond

func (afterStart) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (afterStart) HandleConn(context.Context, stats.ConnStats)                       {}
