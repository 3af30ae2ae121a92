package cri

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// panicky is a RuntimeService whose Status and GetContainerEvents panic and
// whose Version echoes the size of its request.
type panicky struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (panicky) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	var m map[string]int
	m["boom"] = 1 // a nil map write: a real bug's panic
	return nil, nil
}

func (panicky) GetContainerEvents(*runtimeapi.GetEventsRequest, runtimeapi.RuntimeService_GetContainerEventsServer) error {
	panic("stream handler bug")
}

func (panicky) Version(_ context.Context, r *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: strings.Repeat("x", len(r.Version))}, nil
}

// serve runs a gRPC server with berthd's options and a panicky service on a
// unix socket and returns a client of it.
func serve(t *testing.T) runtimeapi.RuntimeServiceClient {
	t.Helper()
	s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.SetReady()
	srv := grpc.NewServer(s.ServerOptions()...)
	runtimeapi.RegisterRuntimeServiceServer(srv, panicky{})
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

func TestPanicRecovery(t *testing.T) {
	c := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		_, err := c.Status(ctx, &runtimeapi.StatusRequest{})
		if status.Code(err) != codes.Internal {
			t.Fatalf("call %d: panicking unary handler: got %v, want Internal", i, err)
		}
		if strings.Contains(err.Error(), "nil map") {
			t.Errorf("the panic value leaked to the client: %v", err)
		}
	}
	stream, err := c.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("panicking stream handler: got %v, want Internal", err)
	}
	// The server is still there for the next call.
	if _, err := c.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"}); err != nil {
		t.Fatalf("Version after panics: %v", err)
	}
}

func TestMessageLimits(t *testing.T) {
	c := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Above gRPC's 4 MiB default, below kubelet's 16 MiB, both ways.
	big := strings.Repeat("v", 5<<20)
	resp, err := c.Version(ctx, &runtimeapi.VersionRequest{Version: big})
	if err != nil {
		t.Fatalf("5 MiB request: %v", err)
	}
	if len(resp.RuntimeName) != len(big) {
		t.Fatalf("response of %d bytes, want %d", len(resp.RuntimeName), len(big))
	}
	_, err = c.Version(ctx, &runtimeapi.VersionRequest{Version: strings.Repeat("v", MaxMsgSize+1)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("request above 16 MiB: got %v, want ResourceExhausted", err)
	}
}
