package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// maxStacks bounds one dump of every goroutine's stack.
const maxStacks = 4 << 20

// dumpStacksOnUSR1 logs every goroutine's stack on SIGUSR1, as containerd
// does: what berthd is doing (or is stuck in) without stopping it.
func dumpStacksOnUSR1(ctx context.Context, log *slog.Logger) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr1:
		}
		buf := make([]byte, maxStacks)
		buf = buf[:runtime.Stack(buf, true)]
		log.Info("SIGUSR1: goroutine stacks", "goroutines", runtime.NumGoroutine(), "stacks", string(buf))
	}
}
