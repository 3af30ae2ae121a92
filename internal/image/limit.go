package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/berth-project/berth/internal/errdefs"
)

// DefaultMaxLayerUnpackedBytes is the default cap on what one layer may
// write (64 GiB): above the largest layers real images carry (CUDA and ML
// framework layers reach 10 to 30 GiB unpacked; registries such as ECR cap a
// layer blob at about 50 GiB), far below what a decompression or sparse-file
// bomb claims (a 10 KiB tar can declare a 1 TiB file).
const DefaultMaxLayerUnpackedBytes = 64 << 30

// tarEntryCost is what each tar entry counts on top of its declared size:
// one tar block, a stand-in for the inode and directory entry it creates,
// so that millions of empty files count too.
const tarEntryCost = 512

// tarDirCost is what a directory entry counts: a directory takes at least
// one 4 KiB block on ext4 and xfs (a million empty directories, 10 MB as
// gzip, occupy 4 GiB).
const tarDirCost = 4096

// DefaultMaxLayerEntries is the default cap on the entries (files, dirs,
// links) of one layer: 1 million. The layers of real images hold up to a
// few hundred thousand (a full TeX Live or a large node_modules tree),
// while each entry costs an inode (a 100 GiB ext4 disk has about 6.5
// million), about 0.15 ms to unpack, and, for a directory, about 540 bytes
// of berthd memory until the layer is done (the unpacker keeps directory
// headers to set their times last): 1 million directories, an 8 MB gzip
// blob, take about 540 MB of memory, 4 GiB of disk and 3 minutes; berthd's
// memory budget rules out more.
const DefaultMaxLayerEntries = 1_000_000

// ErrLayerTooLarge marks a layer whose unpacked size or entry count exceeds
// the limit.
var ErrLayerTooLarge = errors.New("layer exceeds the unpacked size limit")

// tarGuard checks a layer's uncompressed tar stream against a byte limit
// before the unpacker acts on it. It sits on the stream as an io.Writer (a
// tee) and parses the same bytes with archive/tar, the parser go-archive
// uses, in lockstep: Write returns only after the guard has examined every
// byte it was given, so a header declaring too much is refused before the
// unpacker has read it. It counts the size each entry declares, not the
// bytes the tar carries: a sparse entry counts its full logical size, which
// is what the unpacker writes (it writes holes as zeros). The stream's own
// length (padding, data after the end marker) is capped too, and so is the
// number of entries.
type tarGuard struct {
	limit      int64
	maxEntries int64
	what       string // "layer sha256:…", for messages

	chunks chan []byte
	ack    chan struct{}
	done   chan struct{}

	// Set by the scanner goroutine before done is closed.
	err      error
	declared int64 // sum of entry sizes and per-entry costs
	entries  int64

	// Only the writing goroutine touches these.
	streamed int64 // bytes given to Write
	werr     error // why Write refused, when it did
	closed   bool
}

func newTarGuard(limit, maxEntries int64, what string) *tarGuard {
	g := &tarGuard{
		limit:      limit,
		maxEntries: maxEntries,
		what:       what,
		chunks:     make(chan []byte),
		ack:        make(chan struct{}),
		done:       make(chan struct{}),
	}
	go g.scan()
	return g
}

// Write hands p to the scanner and returns once it has examined all of p
// (it asks for more) or has failed.
func (g *tarGuard) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if g.werr != nil {
		return 0, g.werr
	}
	g.streamed += int64(len(p))
	if g.streamed > g.limit {
		g.werr = g.tooLarge(fmt.Sprintf("its uncompressed tar stream is longer than %d bytes", g.limit))
		return 0, g.werr
	}
	select {
	case g.chunks <- p:
	case <-g.done:
		return 0, g.failed()
	}
	select {
	case <-g.ack:
		return len(p), nil
	case <-g.done:
		if g.err != nil {
			return 0, g.err
		}
		return len(p), nil
	}
}

// Close ends the stream and returns the guard's verdict.
func (g *tarGuard) Close() error {
	if !g.closed {
		g.closed = true
		close(g.chunks)
	}
	<-g.done
	if g.werr != nil {
		return g.werr
	}
	return g.err
}

// failed is the error of a Write after the scanner stopped.
func (g *tarGuard) failed() error {
	if g.err != nil {
		return g.err
	}
	return errors.New("tar guard stopped")
}

func (g *tarGuard) tooLarge(detail string) error {
	return &limitError{msg: fmt.Sprintf("%s unpacks to more than images.max_layer_unpacked_bytes (%d bytes): %s; "+
		"raise the limit if the image is trusted and this large", g.what, g.limit, detail)}
}

// testHookGuardEntry, when set by a test, sees every header the guard
// parses.
var testHookGuardEntry func(*tar.Header)

// scan runs the tar parser over the chunks Write hands in, then drains.
func (g *tarGuard) scan() {
	src := &chunkReader{g: g}
	defer func() {
		// Take whatever comes after the end marker, unexamined but counted
		// by Write, so writers never block on a finished scanner.
		if g.err == nil {
			_, _ = io.Copy(io.Discard, src)
		}
		close(g.done)
	}()
	defer recoverAsError(slog.Default().With("component", "image"), "the tar guard of "+g.what, &g.err)
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			if errors.Is(err, errChunksClosed) {
				return // the unpacker stopped early; it reports why
			}
			g.err = errdefs.Invalid(fmt.Sprintf("%s is not a valid tar stream: %v", g.what, err))
			return
		}
		if testHookGuardEntry != nil {
			testHookGuardEntry(hdr)
		}
		g.entries++
		// Go's tar reader accepts a negative size on entries without data
		// (links, dirs, devices); summed, one would cancel out every later
		// entry's size and let a bomb through.
		if hdr.Size < 0 {
			g.err = errdefs.Invalid(fmt.Sprintf("%s: entry %q declares a negative size (%d)", g.what, hdr.Name, hdr.Size))
			return
		}
		if g.entries > g.maxEntries {
			g.err = &limitError{msg: fmt.Sprintf("%s has more than images.max_layer_entries (%d) entries; "+
				"raise the limit if the image is trusted and this large", g.what, g.maxEntries)}
			return
		}
		cost := int64(tarEntryCost)
		if hdr.Typeflag == tar.TypeDir {
			cost = tarDirCost
		}
		if hdr.Size > g.limit-g.declared-cost {
			g.err = g.tooLarge(fmt.Sprintf("entry %q declares %d bytes after %d entries totalling %d bytes", hdr.Name, hdr.Size, g.entries-1, g.declared))
			return
		}
		g.declared += hdr.Size + cost
	}
}

var errChunksClosed = errors.New("tar stream ended")

// chunkReader is the scanner's side of the lockstep: it acknowledges a
// chunk only when the parser asks for bytes beyond it.
type chunkReader struct {
	g       *tarGuard
	cur     []byte
	pending bool // a chunk was taken and not yet acknowledged
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.cur) == 0 {
		if r.pending {
			r.pending = false
			r.g.ack <- struct{}{}
		}
		b, ok := <-r.g.chunks
		if !ok {
			return 0, errChunksClosed
		}
		r.cur, r.pending = b, true
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// limitError is a layer over the limit: ResourceExhausted over CRI.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Is(target error) bool {
	return target == ErrLayerTooLarge || target == errdefs.ErrResourceExhausted
}
