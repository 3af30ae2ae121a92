package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-project/berth/internal/errdefs"
)

// zstdWindow compresses b as a zstd stream whose frame header asks the
// decoder for a window of window bytes.
func zstdWindow(t testing.TB, b []byte, window int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize != uint64(window) {
		t.Fatalf("frame window %d, want %d", h.WindowSize, window)
	}
	return buf.Bytes()
}

// zstdSingle compresses b as one single-segment zstd frame: its window is
// its whole content.
func zstdSingle(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil, zstd.WithSingleSegment(true), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

// TestZstdWindowCapped: a zstd layer whose frame asks for a window above
// 64 MiB (memory the decoder holds per layer being unpacked) is refused as
// InvalidArgument, whether the window is declared or is a single-segment
// frame's content size; 64 MiB itself is fine.
func TestZstdWindowCapped(t *testing.T) {
	random := make([]byte, 512<<10) // more than one zstd block: a streamed frame
	for i := range random {
		random[i] = byte(i*7919 ^ i>>3)
	}
	small := layerTar(t, file("f", string(random)))
	big := zeroTar(t, 80<<20)
	for _, c := range []struct {
		name string
		tar  []byte
		blob func() []byte
		ok   bool
	}{
		{"window 8 MiB", small, func() []byte { return zstdWindow(t, small, 8<<20) }, true},
		{"window 64 MiB", small, func() []byte { return zstdWindow(t, small, 64<<20) }, true},
		{"window 128 MiB", small, func() []byte { return zstdWindow(t, small, 128<<20) }, false},
		{"window 512 MiB", small, func() []byte { return zstdWindow(t, small, 512<<20) }, false},
		{"single segment 512 KiB", small, func() []byte { return zstdSingle(t, small) }, true},
		{"single segment 80 MiB", big, func() []byte { return zstdSingle(t, big) }, false},
	} {
		e := newEnv(t)
		tb := c.tar
		blob := c.blob()
		in := e.s.NewIngest()
		_, err := in.Layer(context.Background(), LayerSpec{Blob: v1.Descriptor{Digest: sha(blob), Size: int64(len(blob))}, DiffID: sha(tb)},
			func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
		in.Close()
		if c.ok {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "window") {
			t.Errorf("%s: err = %v, want InvalidArgument about the window", c.name, err)
		}
		if got := e.names("layers"); len(got) != 0 {
			t.Errorf("%s: layers = %v", c.name, got)
		}
	}
}

// logBuffer captures the default slog logger's output for a test.
func logBuffer(t *testing.T) *syncBuffer {
	t.Helper()
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPullWorkerPanic: a panic in a layer worker (here raised by the
// progress callback, which runs there) fails that pull with an error and
// a logged stack instead of ending the process; the next pull works.
func TestPullWorkerPanic(t *testing.T) {
	logs := logBuffer(t)
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/test/panic:1"
	img := makeImage(t, "panic", gzLayer(t, layerTar(t, file("a", "a"))))
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(parsed, img); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	p := NewPuller(e.s, PullConfig{})
	_, err = p.Pull(context.Background(), ref, PullOptions{Progress: func(pp PullProgress) {
		for _, l := range pp.Layers {
			if l.State == layerDownloading {
				panic("boom in a layer worker")
			}
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "boom in a layer worker") {
		t.Fatalf("Pull = %v, want the panic as an error", err)
	}
	if out := logs.String(); !strings.Contains(out, "panic") || !strings.Contains(out, "goroutine") {
		t.Errorf("no stack logged:\n%s", out)
	}
	if got := e.names("tmp"); len(got) != 0 {
		t.Errorf("tmp after the panic = %v", got)
	}
	if _, err := p.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatalf("pull after the panic: %v", err)
	}
}

// TestTarGuardPanic: a panic while the guard parses a tar stream (a parser
// bug on hostile input) fails that layer instead of ending the process.
func TestTarGuardPanic(t *testing.T) {
	logs := logBuffer(t)
	testHookGuardEntry = func(h *tar.Header) {
		if h.Name == "evil" {
			panic("boom in the tar guard")
		}
	}
	defer func() { testHookGuardEntry = nil }()
	e := newEnv(t)
	tb := layerTar(t, file("ok", "ok"), file("evil", "x"), file("after", "y"))
	in := e.s.NewIngest()
	_, err := in.Layer(context.Background(), LayerSpec{Blob: v1.Descriptor{Digest: sha(tb), Size: int64(len(tb))}, DiffID: sha(tb)},
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb)), nil })
	in.Close()
	if err == nil || !strings.Contains(err.Error(), "boom in the tar guard") {
		t.Fatalf("Layer = %v, want the panic as an error", err)
	}
	if errors.Is(err, ErrLayerTooLarge) {
		t.Fatalf("a panic reported as a limit: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, "goroutine") {
		t.Errorf("no stack logged:\n%s", out)
	}
	if got := e.names("layers"); len(got) != 0 {
		t.Fatalf("layers = %v", got)
	}
}
