package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TargetSpec is one CRI endpoint to measure, from --target
// "name=berth,endpoint=unix:///run/berth/berth.sock,helpers=conmon[,pid=N]".
type TargetSpec struct {
	Name     string
	Endpoint string // unix:///path or /path
	// PID is the daemon's process; 0 finds the process listening on the socket.
	PID int
	// Helpers matches the names (argv[0] without its directory) of the
	// per-pod or per-container processes the runtime starts beside the
	// workload: conmon for berth and CRI-O, containerd-shim-runc-v2 and
	// pause for containerd.
	Helpers *regexp.Regexp
	// Metrics is the runtime's Prometheus page (http://host:port/metrics),
	// read before and after the sequential workloads for berthd's per-step
	// times (berth_cri_step_duration_seconds); "": not read.
	Metrics string
	// CLI is a berth CLI binary: with it the bench also times `berth run
	// --rm IMAGE true` end to end against this target ("": not run).
	CLI string
}

// ParseTarget parses one --target value.
func ParseTarget(s string) (TargetSpec, error) {
	var t TargetSpec
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return t, fmt.Errorf("target %q: %q is not key=value (keys: name, endpoint, helpers, pid, metrics, cli)", s, kv)
		}
		switch k {
		case "name":
			t.Name = v
		case "endpoint":
			t.Endpoint = v
		case "helpers":
			re, err := regexp.Compile("^(?:" + v + ")$")
			if err != nil {
				return t, fmt.Errorf("target %q: helpers: %w", s, err)
			}
			t.Helpers = re
		case "pid":
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				return t, fmt.Errorf("target %q: pid %q is not a process id", s, v)
			}
			t.PID = pid
		case "cli":
			t.CLI = v
		case "metrics":
			if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return t, fmt.Errorf("target %q: metrics %q is not an http:// URL", s, v)
			}
			t.Metrics = v
		default:
			return t, fmt.Errorf("target %q: unknown key %q (keys: name, endpoint, helpers, pid, metrics, cli)", s, k)
		}
	}
	if t.Endpoint == "" {
		return t, fmt.Errorf("target %q: endpoint is required", s)
	}
	if !strings.HasPrefix(t.Endpoint, "unix://") {
		if !strings.HasPrefix(t.Endpoint, "/") {
			return t, fmt.Errorf("target %q: endpoint %q is not unix:///path or /path", s, t.Endpoint)
		}
		t.Endpoint = "unix://" + t.Endpoint
	}
	if t.Name == "" {
		t.Name = t.SocketPath()
	}
	return t, nil
}

// SocketPath is the endpoint's file.
func (t TargetSpec) SocketPath() string { return strings.TrimPrefix(t.Endpoint, "unix://") }

// client is one connection to a target, as one kubelet has.
type client struct {
	conn    *grpc.ClientConn
	runtime runtimeapi.RuntimeServiceClient
	image   runtimeapi.ImageServiceClient
}

func dial(endpoint string) (*client, error) {
	// kubelet's message size limits (16 MiB both ways).
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	return &client{conn: conn, runtime: runtimeapi.NewRuntimeServiceClient(conn), image: runtimeapi.NewImageServiceClient(conn)}, nil
}

func (c *client) Close() { _ = c.conn.Close() }

// version asks the runtime's name and version, which also proves the
// socket answers.
func (c *client) version(ctx context.Context) (string, error) {
	v, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", err
	}
	return v.RuntimeName + " " + v.RuntimeVersion, nil
}
