// Command berth-pause is PID 1 of a pod that shares its PID namespace: it
// holds the namespace open and reaps the zombies its containers leave.
// berth runs it only for such pods (other pods need no process at all).
// It uses the standard library alone to stay small: one runs per such pod.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
