package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
)

// The port-forward protocol as the streaming server speaks it: per local
// connection an error stream and a data stream, tied by a requestID header.
const (
	portForwardProtocolV1 = "portforward.k8s.io"
	headerPort            = "port"
	headerRequestID       = "requestID"
)

// portPair is one LOCAL:REMOTE argument.
type portPair struct{ local, remote int32 }

// parsePorts reads [LOCAL:]REMOTE arguments; LOCAL 0 (":REMOTE") picks a
// free port.
func parsePorts(args []string) ([]portPair, error) {
	var out []portPair
	for _, arg := range args {
		l, r, ok := strings.Cut(arg, ":")
		if !ok {
			l, r = arg, arg
		}
		if l == "" {
			l = "0"
		}
		lp, err1 := strconv.ParseUint(l, 10, 16)
		rp, err2 := strconv.ParseUint(r, 10, 16)
		if err1 != nil || err2 != nil || rp == 0 {
			return nil, fmt.Errorf("port %q: want [LOCAL:]REMOTE with TCP port numbers", arg)
		}
		out = append(out, portPair{int32(lp), int32(rp)})
	}
	return out, nil
}

func portForwardCmd(a *app) *cobra.Command {
	var address string
	cmd := &cobra.Command{
		Use:   "port-forward POD [LOCAL:]REMOTE...",
		Short: "Forward local TCP ports to ports inside a pod",
		Long: "Listen on LOCAL (on --address) and forward each connection to REMOTE on the pod's\n" +
			"loopback, through berthd's streaming server (CRI PortForward). :REMOTE picks a free\n" +
			"local port. Runs until interrupted.",
		Args:    cobra.MinimumNArgs(2),
		Example: "  berth port-forward nginx 8080:80",
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, err := parsePorts(args[1:])
			if err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			ids, err := a.resolvePods(ctx, args[:1])
			if err != nil {
				cancel()
				return err
			}
			ports := make([]int32, len(pairs))
			for i, p := range pairs {
				ports[i] = p.remote
			}
			resp, err := a.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: ids[0], Port: ports})
			cancel()
			if err != nil {
				return fmt.Errorf("port-forward to pod %s: %w", shortID(ids[0]), err)
			}
			sctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.portForward(sctx, resp.GetUrl(), address, pairs)
		},
	}
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "local address to listen on")
	return cmd
}

// portForward serves the listeners until ctx ends, one SPDY connection for
// all of them, as kubectl does.
func (a *app) portForward(ctx context.Context, url, address string, pairs []portPair) error {
	conn, err := dialStreaming(ctx, url, portForwardProtocolV1)
	if err != nil {
		return err
	}
	defer conn.Close()
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, p := range pairs {
		l, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(int(p.local))))
		if err != nil {
			return fmt.Errorf("listening for port %d: %w", p.remote, err)
		}
		listeners = append(listeners, l)
		fmt.Fprintf(a.stdout, "Forwarding from %s -> %d\n", l.Addr(), p.remote)
	}
	var requestID atomic.Int64
	var wg sync.WaitGroup
	for i, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					if err := forwardOne(conn, c, pairs[i].remote, requestID.Add(1)); err != nil {
						fmt.Fprintf(a.stderr, "berth: port %d: %v\n", pairs[i].remote, err)
					}
				}()
			}
		}()
	}
	select {
	case <-ctx.Done():
	case <-conn.CloseChan():
		fmt.Fprintln(a.stderr, "berth: the streaming server closed the connection")
	}
	for _, l := range listeners {
		l.Close()
	}
	wg.Wait()
	return nil
}

// forwardOne carries one local connection over a stream pair.
func forwardOne(conn httpstream.Connection, c net.Conn, port int32, id int64) error {
	defer c.Close()
	h := http.Header{}
	h.Set(headerStreamType, "error")
	h.Set(headerPort, strconv.Itoa(int(port)))
	h.Set(headerRequestID, strconv.FormatInt(id, 10))
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return err
	}
	// We send nothing on the error stream; the server writes there.
	errStream.Close()
	errc := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(errStream)
		switch {
		case err != nil:
			errc <- err
		case len(b) > 0:
			errc <- errors.New(string(b))
		default:
			errc <- nil
		}
	}()
	h.Set(headerStreamType, "data")
	data, err := conn.CreateStream(h)
	if err != nil {
		return err
	}
	defer conn.RemoveStreams(data, errStream)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, data)
		close(done)
	}()
	go func() {
		_, _ = io.Copy(data, c)
		data.Close() // half-close: the pod's side sees the end
	}()
	select {
	case <-done:
	case err := <-errc:
		if err != nil {
			return err
		}
		<-done
	}
	return nil
}
