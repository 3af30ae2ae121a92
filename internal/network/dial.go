// Package network attaches pods to the pod network.
package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialPod connects to port on the pod's loopback from inside the pod's
// network namespace (netnsPath, the pinned namespace file): the network side
// of port-forwarding. The socket is created on a locked OS thread that has
// joined the namespace; sockets keep the namespace they were created in, so
// the connection works from any goroutine afterwards. The thread is not
// returned to the scheduler (the goroutine exits locked).
func DialPod(ctx context.Context, netnsPath string, port int32) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ch <- func() result {
			f, err := os.Open(netnsPath)
			if err != nil {
				return result{err: fmt.Errorf("open pod network namespace: %w", err)}
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				return result{err: fmt.Errorf("enter pod network namespace: %w", err)}
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return result{err: fmt.Errorf("connect to port %d in the pod: %w", port, err)}
			}
			return result{conn: conn}
		}()
	}()
	r := <-ch
	return r.conn, r.err
}
