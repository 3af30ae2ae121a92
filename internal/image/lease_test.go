package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// leaseEnv imports an image "a:1" of two layers of its own.
func leaseEnv(t *testing.T) (*testEnv, *Image) {
	t.Helper()
	e := newEnv(t)
	base := gzLayer(t, layerTar(t, dir("bin/"), file("bin/sh", "sh")))
	top := gzLayer(t, layerTar(t, file("marker", "m")))
	writeDockerSave(t, filepath.Join(e.dir, "a.tar"), makeImage(t, "a", base, top), "a:1")
	return e, importOne(t, e, filepath.Join(e.dir, "a.tar"))
}

// TestLeaseKeepsLayersThroughRemove replays a container create that has
// resolved its image (LeaseImage) but not yet published its record when
// RemoveImage runs: the layers it is about to mount stay until the record
// counts them (the in-use query the caller passes) and the lease is released, and go with
// the next GC once no container uses them.
func TestLeaseKeepsLayersThroughRemove(t *testing.T) {
	e, img := leaseEnv(t)
	ctx := context.Background()
	var published bool
	inUse := func(string) bool { return published }

	got, lease, err := e.s.LeaseImage("a:1")
	if err != nil || got.ID != img.ID {
		t.Fatalf("LeaseImage: %v, %v", got, err)
	}
	// The pause point: RemoveImage runs between resolve and publish.
	if err := e.s.Remove(ctx, "a:1", inUse); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.s.LayerDirs(got) {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("layer the create is about to mount was deleted by RemoveImage: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.s.LayerDirs(got)[1], "marker")); err != nil || string(b) != "m" {
		t.Fatalf("leased layer content: %q, %v", b, err)
	}
	published = true
	lease.Release()
	lease.Release() // idempotent: must not drop someone else's lease
	if err := e.s.GC(ctx, inUse); err != nil {
		t.Fatal(err)
	}
	if n := len(e.names("layers")); n != 2 {
		t.Fatalf("layers of a published container after GC: %d, want 2", n)
	}
	published = false // the container is removed
	if err := e.s.GC(ctx, inUse); err != nil {
		t.Fatal(err)
	}
	if got := e.names("layers"); len(got) != 0 {
		t.Fatalf("layers left once nothing uses them: %v", got)
	}
	var nilLease *Lease
	nilLease.Release()
}

// TestLeaseResolveAndLeaseAreOne pauses LeaseImage between resolving the
// image and leasing its layers, and runs RemoveImage then: whatever that
// remove gets done during the pause, the image LeaseImage hands out has its
// layers, and they stay until the lease is released.
func TestLeaseResolveAndLeaseAreOne(t *testing.T) {
	e, _ := leaseEnv(t)
	paused, resume := make(chan struct{}), make(chan struct{})
	leaseResolved = func() { close(paused); <-resume }
	t.Cleanup(func() { leaseResolved = func() {} })

	type result struct {
		img *Image
		l   *Lease
		err error
	}
	leased := make(chan result, 1)
	go func() {
		img, l, err := e.s.LeaseImage("a:1")
		leased <- result{img, l, err}
	}()
	<-paused
	removed := make(chan error, 1)
	go func() { removed <- e.s.Remove(context.Background(), "a:1", nil) }()
	// Let the remove go as far as it can: its record delete at least, its
	// GC too unless LeaseImage holds the GC lock.
	if err := waitFor(5*time.Second, func() bool { _, err := e.s.Get("a:1"); return errdefs.IsNotFound(err) }); err != nil {
		t.Fatal("RemoveImage did not delete the record")
	}
	select {
	case <-removed:
	case <-time.After(200 * time.Millisecond):
	}
	close(resume)
	r := <-leased
	if r.err != nil {
		t.Fatalf("LeaseImage resolved the image before the remove, then: %v", r.err)
	}
	for _, d := range e.s.LayerDirs(r.img) {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("LeaseImage handed out an image whose layer the concurrent RemoveImage deleted: %v", err)
		}
	}
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if n := len(e.names("layers")); n != 2 {
		t.Fatalf("leased layers after the remove: %d, want 2", n)
	}
	r.l.Release()
	if err := e.s.GC(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := e.names("layers"); len(got) != 0 {
		t.Fatalf("layers left after release and GC: %v", got)
	}
}

func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// A failed ingest's cleanup cannot know which unreferenced layers
// containers use: it removes only the layer dirs it unpacked itself, so the
// layers of a removed image that a container still uses stay.
func TestFailedIngestSparesLayersItDidNotMake(t *testing.T) {
	e, img := leaseEnv(t)
	ctx := context.Background()
	inUse := func(string) bool { return true } // a container uses them
	if err := e.s.Remove(ctx, "a:1", inUse); err != nil {
		t.Fatal(err)
	}
	in := e.s.NewIngest()
	in.setWrote() // it wrote something, then failed
	in.Close()
	for _, d := range e.s.LayerDirs(img) {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("a failed ingest's cleanup deleted a layer in use: %v", err)
		}
	}
}
