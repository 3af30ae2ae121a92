package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"archive/tar"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

const (
	pullLayers    = 5
	pullLayerSize = 40 << 20 // 5 x 40 MiB of random data: ~200 MiB, incompressible
)

type pullSetup struct {
	reg   *framework.Registry
	ref   string
	blobs []string // layer blob paths in the registry's storage
	bytes int64
}

// setupPullImage builds the image and pushes it to a loopback registry that
// lives until b ends.
func setupPullImage(b *testing.B) *pullSetup {
	var (
		pullReg   *framework.Registry
		pullRef   string
		pullBlobs []string
		pullBytes int64
		pullErr   error
	)
	func() {
		pullReg = framework.StartRegistry(b, framework.RegistryOptions{})
		img := empty.Image
		for i := range pullLayers {
			data := make([]byte, pullLayerSize)
			if _, err := rand.Read(data); err != nil {
				pullErr = err
				return
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("blob%d", i), Mode: 0o644, Size: int64(len(data))})
			_, _ = tw.Write(data)
			_ = tw.Close()
			raw := buf.Bytes()
			l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
				tarball.WithCompressionLevel(gzip.BestSpeed))
			if err != nil {
				pullErr = err
				return
			}
			if img, err = mutate.Append(img, mutate.Addendum{Layer: l}); err != nil {
				pullErr = err
				return
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			pullErr = err
			return
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			pullErr = err
			return
		}
		pullReg.Push(b, "bench/big:1", img)
		pullRef = pullReg.Ref("bench/big:1")
		m, err := img.Manifest()
		if err != nil {
			pullErr = err
			return
		}
		for _, l := range m.Layers {
			pullBlobs = append(pullBlobs, registryBlobPath(pullReg, l.Digest))
			pullBytes += l.Size
		}
	}()
	if pullErr != nil {
		b.Fatal(pullErr)
	}
	return &pullSetup{reg: pullReg, ref: pullRef, blobs: pullBlobs, bytes: pullBytes}
}

func registryBlobPath(r *framework.Registry, d v1.Hash) string {
	return filepath.Join(r.Dir, "storage", "docker", "registry", "v2", "blobs", d.Algorithm, d.Hex[:2], d.Hex, "data")
}

// BenchmarkPull is a cold pull (image and layers removed before each) of a
// 5-layer ~200 MiB image of random data from the loopback registry, with 3
// and with 1 parallel downloads, beside its floor: reading the layer blobs
// from the registry's disk (page cache warm, as it is for the registry),
// and that plus the work a verified unpack cannot skip (sha256 of the blob,
// gunzip, sha256 of the tar) on one core.
func BenchmarkPull(b *testing.B) {
	ps := setupPullImage(b)
	b.Run("floor", func(b *testing.B) {
		var read, verify time.Duration
		for range b.N {
			start := time.Now()
			for _, p := range ps.blobs {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, f); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			read += time.Since(start)
			start = time.Now()
			for _, p := range ps.blobs {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				blobHash := sha256.New()
				zr, err := gzip.NewReader(io.TeeReader(f, blobHash))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(sha256.New(), zr); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			verify += time.Since(start)
		}
		b.ReportMetric(ms(read)/float64(b.N), "read-ms")
		b.ReportMetric(ms(verify)/float64(b.N), "read+verify+gunzip-ms")
		b.ReportMetric(float64(ps.bytes)/(1<<20), "MiB")
		b.ReportMetric(0, "ns/op")
	})
	for _, jobs := range []int{3, 1} {
		b.Run(fmt.Sprintf("downloads=%d", jobs), func(b *testing.B) {
			d := framework.StartDaemon(b, framework.Options{NoImage: true,
				Config: fmt.Sprintf("[images]\nmax_concurrent_downloads = %d\n", jobs)})
			ctx := context.Background()
			var total time.Duration
			for range b.N {
				start := time.Now()
				resp, err := d.Image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ps.ref}})
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if _, err := d.Image.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}}); err != nil {
					b.Fatal(err)
				}
			}
			per := total / time.Duration(b.N)
			b.ReportMetric(ms(per), "pull-ms")
			b.ReportMetric(float64(ps.bytes)/(1<<20)/per.Seconds(), "MiB/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
