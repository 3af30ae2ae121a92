package admin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// fakeSaver writes size bytes of a pattern, or fails, and records what it
// was asked and how its context ended.
type fakeSaver struct {
	size    int
	err     error
	got     SaveRequest
	ctxDone chan error
}

func (f *fakeSaver) ImportImage(context.Context, string) ([]string, error) { return nil, nil }

func (f *fakeSaver) SaveImages(ctx context.Context, req SaveRequest, w io.Writer) error {
	f.got = req
	if f.err != nil {
		return f.err
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for written := 0; f.size < 0 || written < f.size; {
		n := min(len(chunk), f.size-written)
		if f.size < 0 {
			n = len(chunk)
		}
		if _, err := w.Write(chunk[:n]); err != nil {
			if f.ctxDone != nil {
				f.ctxDone <- ctx.Err()
			}
			return err
		}
		written += n
	}
	return nil
}

type plainImporter struct{}

func (plainImporter) ImportImage(context.Context, string) ([]string, error) { return nil, nil }

func serve(t *testing.T, imp Importer) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	Register(srv, imp)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(conn)
}

func TestSaveImagesStreamsTheArchive(t *testing.T) {
	f := &fakeSaver{size: 3<<20 + 17}
	c := serve(t, f)
	var buf bytes.Buffer
	n, err := c.SaveImages(context.Background(), SaveRequest{Images: []string{"busybox", "alpine"}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(f.size) || buf.Len() != f.size || !bytes.HasPrefix(buf.Bytes(), []byte("0123456789abcdef")) {
		t.Fatalf("got %d bytes (n=%d), want %d", buf.Len(), n, f.size)
	}
	if f.got.Format != FormatDocker || len(f.got.Images) != 2 {
		t.Fatalf("server saw %+v, want both images in the docker format", f.got)
	}
}

func TestSaveImagesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		imp  Importer
		req  SaveRequest
		code codes.Code
	}{
		{"no image", &fakeSaver{}, SaveRequest{}, codes.InvalidArgument},
		{"empty name", &fakeSaver{}, SaveRequest{Images: []string{""}}, codes.InvalidArgument},
		{"bad format", &fakeSaver{}, SaveRequest{Images: []string{"x"}, Format: "zip"}, codes.InvalidArgument},
		{"daemon error", &fakeSaver{err: status.Error(codes.NotFound, "image x: not found")}, SaveRequest{Images: []string{"x"}}, codes.NotFound},
		{"not a saver", plainImporter{}, SaveRequest{Images: []string{"x"}}, codes.Unimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := serve(t, tc.imp).SaveImages(context.Background(), tc.req, &buf)
			if status.Code(err) != tc.code || buf.Len() != 0 {
				t.Fatalf("err %v (%s), %d bytes; want %s and none", err, status.Code(err), buf.Len(), tc.code)
			}
		})
	}
}

// failWriter fails after the first write, as a full disk would.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n++; w.n > 1 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestSaveImagesEndsWithTheClient: a client that stops (its context ends
// or its writer fails) ends the server's save instead of leaving it
// writing into a stream nobody reads.
func TestSaveImagesEndsWithTheClient(t *testing.T) {
	f := &fakeSaver{size: -1, ctxDone: make(chan error, 1)}
	c := serve(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.SaveImages(ctx, SaveRequest{Images: []string{"x"}}, io.Discard); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("endless save with a deadline: %v", err)
	}
	select {
	case err := <-f.ctxDone:
		if err == nil {
			t.Error("the server's save stopped but its context had not ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept saving after the client's deadline")
	}

	if _, err := c.SaveImages(context.Background(), SaveRequest{Images: []string{"x"}}, &failWriter{}); err == nil || err.Error() != "disk full" {
		t.Fatalf("failing writer: %v", err)
	}
	select {
	case <-f.ctxDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept saving after the client stopped reading")
	}
}
