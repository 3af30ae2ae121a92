package cri

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/berth-project/berth/internal/metrics"
)

// Limits of the gRPC server berthd serves CRI (and its admin service) on.
const (
	// MaxMsgSize is kubelet's own CRI message limit, both ways: gRPC's
	// default of 4 MiB would refuse large but valid requests (a pod with
	// many annotations or a big env) that kubelet sends.
	MaxMsgSize = 16 << 20
	// maxConcurrentStreams bounds the calls in flight on one connection,
	// so one client cannot make berthd hold unbounded handler goroutines.
	// kubelet uses one connection and rarely has more than a few dozen.
	maxConcurrentStreams = 1000
	// keepaliveMinTime is how often a client may ping. gRPC's default
	// (5 minutes) answers a client that pings more often with GOAWAY,
	// ending its calls; 5 s tolerates kubelet's and crictl's settings and
	// still stops a ping flood.
	keepaliveMinTime = 5 * time.Second
)

// ServerOptions are the options berthd's gRPC server is built with:
// panic recovery outside the readiness gate and call log, message size
// limits, a bound on concurrent streams, keepalive enforcement, and
// what is kept ready for the next pod start made again once the pod
// start calls are over (afterStarts).
func (s *Server) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.UnaryInterceptor),
		grpc.ChainStreamInterceptor(s.recoverStream, s.StreamInterceptor),
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(MaxMsgSize),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: true, // kubelet pings an idle connection
		}),
	}
	if s.Pods != nil {
		opts = append(opts, grpc.StatsHandler(&afterStarts{prepare: s.Pods.PrepareAhead}))
	}
	return opts
}

// recoverUnary turns a handler panic into an Internal error: without it a
// panic in one call ends berthd and every call and stream in flight.
// It is the outermost interceptor, so it covers the others too.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(ctx, info.FullMethod, r, start)
			resp = nil
		}
	}()
	return handler(ctx, req)
}

// recoverStream does the same for streaming calls.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(ss.Context(), info.FullMethod, r, start)
		}
	}()
	return handler(srv, ss)
}

// panicked logs a recovered panic with its stack and returns the error the
// client gets. The stack stays in the log: it is no business of the client.
func (s *Server) panicked(ctx context.Context, method string, r any, start time.Time) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	log.ErrorContext(ctx, "panic in CRI call; recovered", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	metrics.ObserveRPC(method, time.Since(start), codes.Internal)
	return status.Errorf(codes.Internal, "berthd: internal error in %s (a bug; the daemon log has the details)", method)
}
