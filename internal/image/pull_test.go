package image

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPullCompressionsAndProgress pulls (from go-containerregistry's
// in-memory registry on loopback) an image with gzip, zstd and uncompressed
// layers, watching the progress callback, then pulls it again: nothing is
// fetched the second time.
func TestPullCompressionsAndProgress(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img := makeImage(t, "x",
		gzLayer(t, layerTar(t, file("gz", "gzip layer"))),
		zstdLayer(t, layerTar(t, file("zst", "zstd layer"))),
		rawLayer(layerTar(t, file("raw", "plain layer"))),
	)
	ref := host + "/test/multi:1"
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(parsed, img); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	p := NewPuller(e.s, PullConfig{})
	var mu sync.Mutex
	var last PullProgress
	got, err := p.Pull(context.Background(), ref, PullOptions{Progress: func(pp PullProgress) {
		mu.Lock()
		last = pp
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgDigest, _ := img.ConfigName()
	if got.ID != cfgDigest.String() {
		t.Errorf("image id %s, want the config digest %s", got.ID, cfgDigest)
	}
	if len(last.Layers) != 3 {
		t.Fatalf("last progress %+v: want 3 layers", last)
	}
	for _, l := range last.Layers {
		if l.State != layerDone || l.Bytes != l.Size || l.Size == 0 {
			t.Errorf("layer progress %+v: want done with all bytes", l)
		}
	}
	if n := e.s.unpacks.Load(); n != 3 {
		t.Errorf("%d layers unpacked, want 3", n)
	}

	again, err := p.Pull(context.Background(), ref, PullOptions{Progress: func(pp PullProgress) { last = pp }})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != got.ID {
		t.Errorf("second pull id %s, want %s", again.ID, got.ID)
	}
	for _, l := range last.Layers {
		if l.State != layerPresent || l.Bytes != 0 {
			t.Errorf("second pull layer %+v: want present, nothing fetched", l)
		}
	}
	if len(p.Active()) != 0 {
		t.Errorf("Active() = %v after the pulls ended", p.Active())
	}

	_, err = p.Pull(context.Background(), host+"/test/multi:absent", PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "test/multi:absent") {
		t.Errorf("absent tag: %v, want an error naming the reference", err)
	}
}
