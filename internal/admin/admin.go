// Package admin is berth's own small gRPC service beside CRI, on the same
// socket, for operations that CRI has no RPC for (importing an image tar,
// saving images as one, the progress of running pulls).
//
// It is declared by hand with well-known protobuf wrapper types instead of a
// generated .proto: three methods do not justify a protoc step in the build.
package admin

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const serviceName = "berth.admin.v1.Admin"

// Importer imports an image archive (docker save or OCI image-layout tar)
// found at a path on the daemon's host and returns the image ids it recorded.
type Importer interface {
	ImportImage(ctx context.Context, path string) ([]string, error)
}

// Register serves imp on srv (and pull progress when imp is also a
// ProgressReporter, image saves when it is a Saver).
func Register(srv *grpc.Server, imp Importer) {
	srv.RegisterService(&serviceDesc, imp)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*Importer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "ImportImage",
		Handler:    importHandler,
	}, pullProgressMethod},
	Streams:  []grpc.StreamDesc{saveImagesStream},
	Metadata: "berth/admin",
}

func importHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.StringValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	call := func(ctx context.Context, req any) (any, error) {
		ids, err := srv.(Importer).ImportImage(ctx, req.(*wrapperspb.StringValue).GetValue())
		if err != nil {
			return nil, err
		}
		out := &wrapperspb.StringValue{}
		if len(ids) > 0 {
			out.Value = joinIDs(ids)
		}
		return out, nil
	}
	if interceptor == nil {
		return call(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/ImportImage"}
	return interceptor(ctx, in, info, call)
}

// Client calls the admin service.
type Client struct{ conn grpc.ClientConnInterface }

// NewClient returns a client on conn.
func NewClient(conn grpc.ClientConnInterface) *Client { return &Client{conn: conn} }

// ImportImage asks the daemon to import the archive at path (a path on the
// daemon's host) and returns the ids of the images it recorded.
func (c *Client) ImportImage(ctx context.Context, path string) ([]string, error) {
	out := new(wrapperspb.StringValue)
	if err := c.conn.Invoke(ctx, "/"+serviceName+"/ImportImage", wrapperspb.String(path), out); err != nil {
		return nil, err
	}
	return splitIDs(out.GetValue()), nil
}
