// Package stream serves the URLs CRI Exec, Attach and PortForward answer
// with: an HTTP server built on k8s.io/cri-streaming (SPDY and WebSocket,
// the protocols kubelet proxies), with single-use tokens that expire after
// a minute, and the adapter that runs those sessions on berth's containers
// and pods.
package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/berth-project/berth/internal/container"
	berthruntime "github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
)

// Config configures the streaming server.
type Config struct {
	// Address is host:port to listen on; port 0 picks a free port. A
	// wildcard host is served, but URLs name 127.0.0.1: kubelet, on the
	// same node, proxies them.
	Address string
	// TLSCert and TLSKey, both set, serve HTTPS.
	TLSCert, TLSKey string
	Containers      *container.Service
	Sandboxes       *sandbox.Service
	// Runtimes finds a pod's handler, for handlers that port-forward
	// themselves (gVisor); nil: every pod is dialled in its netns.
	Runtimes *berthruntime.Registry
	Logger   *slog.Logger
}

// shutdownGrace bounds how long Close waits for sessions to wind down
// (their processes killed) after their connections were closed.
const shutdownGrace = 5 * time.Second

// Server is the streaming server. Its GetExec, GetAttach and GetPortForward
// hand out URLs; Serve serves them.
type Server struct {
	streaming.Server
	http   *http.Server
	lis    net.Listener
	log    *slog.Logger
	url    string
	active atomic.Int64 // sessions being served

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// New listens on cfg.Address; Serve then serves.
func New(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("streaming server: loading TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	lis, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listen on %s: %w", cfg.Address, err)
	}
	s := &Server{lis: lis, log: log, conns: map[*trackedConn]struct{}{}}

	// The library builds URLs from the address it is given: give it the
	// bound one, so port 0 becomes the real port before any URL is made.
	addr := lis.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	sc := streaming.DefaultConfig
	sc.Addr = net.JoinHostPort(host, fmt.Sprint(addr.Port))
	sc.TLSConfig = tlsConfig
	srv, err := streaming.NewServer(sc, &runtime{containers: cfg.Containers, sandboxes: cfg.Sandboxes, runtimes: cfg.Runtimes, log: log})
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	s.Server = srv
	s.url = "http://" + sc.Addr
	if tlsConfig != nil {
		s.url = "https://" + sc.Addr
	}
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.url }

// Serve serves until Close; it then returns nil.
func (s *Server) Serve() error {
	lis := net.Listener(&trackingListener{Listener: s.lis, srv: s})
	if s.http.TLSConfig != nil {
		lis = tls.NewListener(lis, s.http.TLSConfig)
	}
	err := s.http.Serve(lis)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server: no new sessions, and the connections of running
// ones are closed, which ends their exec'd processes. It waits a little
// for them to wind down.
func (s *Server) Close() error {
	err := s.http.Close() // also closes the listener
	s.mu.Lock()
	s.closed = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// Hijacked (upgraded) connections are no longer the http.Server's.
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(shutdownGrace)
	for s.active.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	start := time.Now()
	s.log.Debug("streaming session", "path", redactToken(r.URL.Path), "remote", r.RemoteAddr)
	s.Server.ServeHTTP(w, r)
	s.log.Debug("streaming session ended", "path", redactToken(r.URL.Path), "took", time.Since(start))
}

// redactToken keeps a URL's kind (/exec/, /attach/...) but not its token.
func redactToken(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i+1] + "…"
		}
	}
	return p
}

// GetExec, GetAttach and GetPortForward come from the library; these
// assertions keep the CRI layer's view of them honest.
var (
	_ interface {
		GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
		GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
		GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
	} = (*Server)(nil)
)

// trackingListener wraps accepted connections so the server notices a
// client that goes away: after the upgrade to SPDY or WebSocket the
// http.Server no longer watches the connection, and the request's context
// would never end.
type trackingListener struct {
	net.Listener
	srv *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &trackedConn{Conn: c, ctx: ctx, cancel: cancel, srv: l.srv}
	l.srv.mu.Lock()
	closed := l.srv.closed
	if !closed {
		l.srv.conns[tc] = struct{}{}
	}
	l.srv.mu.Unlock()
	if closed {
		c.Close()
		cancel()
		return nil, net.ErrClosed
	}
	return tc, nil
}

// trackedConn ends its context when the peer goes away (a read fails for
// any reason but a deadline) or the connection is closed.
type trackedConn struct {
	net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	srv    *Server
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	// net/http sets a past deadline to stop its own background read at
	// the upgrade; that is not the peer leaving.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.cancel()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.cancel()
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
	return c.Conn.Close()
}

// connContext gives each request a context that ends with its connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(tc.ctx, cancel)
	return ctx
}
