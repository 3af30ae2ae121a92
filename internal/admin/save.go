package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Archive formats SaveImages writes.
const (
	FormatDocker = "docker" // a `docker save` archive (the default)
	FormatOCI    = "oci"    // an OCI image layout in a tar
)

// SaveRequest names the images to save and the archive format.
type SaveRequest struct {
	Images []string `json:"images"`
	Format string   `json:"format,omitempty"` // FormatDocker when empty
}

// Saver writes images as one archive to w; the value given to Register may
// implement it (SaveImages then answers Unimplemented when it does not).
type Saver interface {
	SaveImages(ctx context.Context, req SaveRequest, w io.Writer) error
}

// saveChunk is the most a SaveImages message carries, well under gRPC's
// default 4 MiB message limit.
const saveChunk = 256 << 10

// SaveImages streams an archive of images from berthd's content store to
// the client: the request as JSON in a StringValue, then BytesValue chunks
// of the archive. An error before the first chunk means nothing was
// written; one after it means the archive is cut short.
var saveImagesStream = grpc.StreamDesc{
	StreamName:    "SaveImages",
	Handler:       saveHandler,
	ServerStreams: true,
}

func saveHandler(srv any, stream grpc.ServerStream) error {
	in := new(wrapperspb.StringValue)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	sv, ok := srv.(Saver)
	if !ok {
		return status.Error(codes.Unimplemented, "this berthd cannot save images")
	}
	var req SaveRequest
	if err := json.Unmarshal([]byte(in.GetValue()), &req); err != nil {
		return status.Errorf(codes.InvalidArgument, "save request does not parse: %v", err)
	}
	if err := req.validate(); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	bw := bufio.NewWriterSize(chunkWriter{stream}, saveChunk)
	if err := sv.SaveImages(stream.Context(), req, bw); err != nil {
		return err
	}
	return bw.Flush()
}

func (r *SaveRequest) validate() error {
	if len(r.Images) == 0 {
		return errors.New("no image to save: name at least one")
	}
	for _, img := range r.Images {
		if img == "" {
			return errors.New("an image to save is named by an empty string")
		}
	}
	switch r.Format {
	case "":
		r.Format = FormatDocker
	case FormatDocker, FormatOCI:
	default:
		return fmt.Errorf("archive format %q is not %s or %s", r.Format, FormatDocker, FormatOCI)
	}
	return nil
}

// chunkWriter sends each write as one message; bufio in front of it sizes
// them. A client that went away fails the send, which ends the save.
type chunkWriter struct{ stream grpc.ServerStream }

func (c chunkWriter) Write(p []byte) (int, error) {
	// SendMsg has serialized p once it returns, so the buffer may be reused.
	if err := c.stream.SendMsg(wrapperspb.Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SaveImages asks the daemon for an archive of req's images and copies it to
// w as it arrives. It returns when the archive is complete, or with the
// error that cut it short (ctx ending, among others).
func (c *Client) SaveImages(ctx context.Context, req SaveRequest, w io.Writer) (int64, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if we stop reading early
	stream, err := c.conn.NewStream(ctx, &saveImagesStream, "/"+serviceName+"/SaveImages")
	if err != nil {
		return 0, err
	}
	if err := stream.SendMsg(wrapperspb.String(string(raw))); err != nil {
		return 0, err
	}
	if err := stream.CloseSend(); err != nil {
		return 0, err
	}
	var n int64
	for {
		chunk := new(wrapperspb.BytesValue)
		err := stream.RecvMsg(chunk)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		m, err := w.Write(chunk.GetValue())
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
}
