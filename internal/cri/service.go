// Package cri serves the CRI v1 RuntimeService and ImageService. It is thin:
// handlers validate and translate requests, call the pod layer for
// lifecycle steps (pod, which orchestrates sandbox, container and image)
// and the domain packages for queries, and return plain Go errors, which the
// interceptors here map to gRPC codes and log, once, for every call.
package cri

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/metrics"
	"github.com/berth-project/berth/internal/pod"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/stats"
)

// Version is berth's version, set at build time.
var Version = "0.1.0"

// Server implements both CRI services.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	Config     *config.Config
	Runtimes   RuntimeHandlers // for Status
	Pods       *pod.Service    // lifecycle steps: run, create, start, stop, remove
	Sandboxes  *sandbox.Service
	Containers *container.Service
	Images     *image.Service
	Puller     *image.Puller // registry pulls; nil: PullImage is unimplemented
	Network    NetworkStatus // nil: pods get loopback only, always ready
	Stats      *stats.Service
	Events     *events.Bus
	Streams    Streamer // exec/attach/port-forward URLs; nil: those calls answer Unavailable
	Security   Security // host security modules, for Status
	Log        *slog.Logger

	ready atomic.Bool
}

// SetReady opens the gate: until then every call answers Unavailable.
func (s *Server) SetReady() { s.ready.Store(true) }

// Register serves s on srv.
func (s *Server) Register(srv *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(srv, s)
	runtimeapi.RegisterImageServiceServer(srv, s)
}

// Hot paths that kubelet polls every second or so are logged below debug
// level, so a debug log stays readable.
var quiet = map[string]bool{
	"/runtime.v1.RuntimeService/ListPodSandbox":        true,
	"/runtime.v1.RuntimeService/ListContainers":        true,
	"/runtime.v1.RuntimeService/Version":               true,
	"/runtime.v1.RuntimeService/Status":                true,
	"/runtime.v1.ImageService/ImageFsInfo":             true,
	"/runtime.v1.RuntimeService/ListContainerStats":    true,
	"/runtime.v1.RuntimeService/ListPodSandboxStats":   true,
	"/runtime.v1.RuntimeService/ListPodSandboxMetrics": true,
}

const levelTrace = slog.LevelDebug - 4

// UnaryInterceptor gates on readiness, logs the call and maps its error.
func (s *Server) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.ready.Load() {
		return nil, status.Error(codes.Unavailable, "berthd is starting: recovering its records")
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	s.logCall(ctx, info.FullMethod, req, start, err)
	st := toStatus(err)
	metrics.ObserveRPC(info.FullMethod, time.Since(start), status.Code(st))
	return resp, st
}

// StreamInterceptor does the same for streaming calls.
func (s *Server) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.ready.Load() {
		return status.Error(codes.Unavailable, "berthd is starting: recovering its records")
	}
	start := time.Now()
	err := handler(srv, ss)
	s.logCall(ss.Context(), info.FullMethod, nil, start, err)
	st := toStatus(err)
	metrics.ObserveRPC(info.FullMethod, time.Since(start), status.Code(st))
	return st
}

func (s *Server) logCall(ctx context.Context, method string, req any, start time.Time, err error) {
	level := slog.LevelDebug
	if quiet[method] {
		level = levelTrace
	}
	if err != nil {
		level = slog.LevelWarn
		if errdefs.IsNotFound(err) {
			level = slog.LevelDebug
		}
	}
	if !s.Log.Enabled(ctx, level) {
		return
	}
	attrs := []any{"method", method, "took", time.Since(start)}
	attrs = appendRequestIDs(attrs, req)
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	s.Log.Log(ctx, level, "cri call", attrs...)
}

// toStatus maps a domain error to a gRPC status, keeping its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, errdefs.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, errdefs.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, errdefs.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, errdefs.ErrResourceExhausted),
		// A full disk (or quota) anywhere below: the node is out of a
		// resource, not broken; the call works once space is freed.
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		code = codes.ResourceExhausted
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errdefs.ErrDeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
