package main

import (
	"context"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// exitWatch follows the runtime's container events (CRI GetContainerEvents)
// for `berth run`, so that the CLI sees its container exit as soon as the
// runtime does instead of finding it by polling ContainerStatus. Where the
// events cannot tell (a runtime without them, a stream that broke, or one
// whose subscription started too late to have seen the container made),
// known is false and the caller asks the runtime.
type exitWatch struct {
	// wake gets a token after every event and when the stream ends.
	wake chan struct{}

	mu     sync.Mutex
	broken bool
	want   string // the container of interest, once known
	// followed is when want was named. The create and start events were
	// sent before those calls returned but may still be on their way to
	// us; until eventGrace has passed, silence means "not exited yet"
	// rather than "the events cannot say".
	followed time.Time
	// last is the last event type of each container seen; once want is
	// set, only want's is kept (a busy node has many containers).
	last   map[string]runtimeapi.ContainerEventType
	status *runtimeapi.ContainerStatus // want's, from its stopped event
}

// eventGrace bounds how long events already sent may take to reach us.
const eventGrace = 500 * time.Millisecond

// watchExits opens the event stream. Open it before the container is
// created: an exit is only trusted from a stream that also saw the create
// or start, since a subscription is live only once the runtime has it.
func (a *app) watchExits(ctx context.Context) *exitWatch {
	w := &exitWatch{wake: make(chan struct{}, 1), last: map[string]runtimeapi.ContainerEventType{}}
	stream, err := a.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		w.broken = true
		return w
	}
	go func() {
		for {
			ev, err := stream.Recv()
			w.record(ev, err)
			select {
			case w.wake <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return w
}

func (w *exitWatch) record(ev *runtimeapi.ContainerEventResponse, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.broken = true
		return
	}
	id := ev.GetContainerId()
	if w.want != "" && id != w.want {
		return
	}
	w.last[id] = ev.GetContainerEventType()
	if w.want != "" && ev.GetContainerEventType() == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
		for _, st := range ev.GetContainersStatuses() {
			if st.GetId() == id {
				w.status = st
			}
		}
	}
}

// follow names the container of interest and forgets the others.
func (w *exitWatch) follow(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want = id
	w.followed = time.Now()
	for k := range w.last {
		if k != id {
			delete(w.last, k)
		}
	}
}

// exited says whether the followed container has exited; known is false
// when the events cannot say.
func (w *exitWatch) exited() (done, known bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, seen := w.last[w.want]
	if w.broken || w.want == "" {
		return false, false
	}
	if !seen {
		// A subscription that started too late never sees want: ask the
		// runtime once the events had time to arrive.
		return false, time.Since(w.followed) < eventGrace
	}
	return t == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT || t == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, true
}

// exitStatus is the followed container's status from its stopped event,
// or nil (also for a nil w).
func (w *exitWatch) exitStatus() *runtimeapi.ContainerStatus {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}
