package image

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// recoverAsError, deferred in a goroutine that handles bytes from outside
// (layer download and unpack workers, the tar guard), turns a panic into an
// error for that one pull or import and logs the stack. The gRPC server's
// recovery covers handler goroutines only: a panic in any other goroutine
// would end berthd and every container call in flight.
func recoverAsError(log *slog.Logger, where string, errp *error) {
	r := recover()
	if r == nil {
		return
	}
	log.Error("panic recovered; failing this operation only", "in", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	*errp = fmt.Errorf("internal error in %s (a bug in berth; the stack is in berthd's log): panic: %v", where, r)
}
