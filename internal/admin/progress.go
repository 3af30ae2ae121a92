package admin

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// LayerProgress is one layer of a running pull, as the admin service
// reports it.
type LayerProgress struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Bytes  int64  `json:"bytes"` // fetched so far
	// State is waiting, shared (another pull fetches it), downloading,
	// done, present (already stored) or failed.
	State string `json:"state"`
}

// PullProgress is a snapshot of one running pull.
type PullProgress struct {
	Ref      string          `json:"ref"`
	Endpoint string          `json:"endpoint,omitempty"`
	Started  time.Time       `json:"started"`
	Layers   []LayerProgress `json:"layers"`
}

// ProgressReporter is what the admin service needs to report pulls; the
// value given to Register may implement it (PullProgress then answers
// Unimplemented when it does not).
type ProgressReporter interface {
	PullProgress() []PullProgress
}

// PullProgress is polled by clients while their PullImage runs (CRI's pull
// is unary): snapshots of every running pull, as JSON in a StringValue.
var pullProgressMethod = grpc.MethodDesc{
	MethodName: "PullProgress",
	Handler:    progressHandler,
}

func progressHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(emptypb.Empty)
	if err := dec(in); err != nil {
		return nil, err
	}
	call := func(ctx context.Context, _ any) (any, error) {
		pr, ok := srv.(ProgressReporter)
		if !ok {
			return nil, status.Error(codes.Unimplemented, "this berthd does not report pull progress")
		}
		b, err := json.Marshal(pr.PullProgress())
		if err != nil {
			return nil, err
		}
		return wrapperspb.String(string(b)), nil
	}
	if interceptor == nil {
		return call(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/PullProgress"}
	return interceptor(ctx, in, info, call)
}

// PullProgress returns the progress of the pulls the daemon runs now.
func (c *Client) PullProgress(ctx context.Context) ([]PullProgress, error) {
	out := new(wrapperspb.StringValue)
	if err := c.conn.Invoke(ctx, "/"+serviceName+"/PullProgress", &emptypb.Empty{}, out); err != nil {
		return nil, err
	}
	var pulls []PullProgress
	if err := json.Unmarshal([]byte(out.GetValue()), &pulls); err != nil {
		return nil, err
	}
	return pulls, nil
}
