package main

import (
	"context"
	"io"

	"github.com/berth-project/berth/internal/admin"
	"github.com/berth-project/berth/internal/image"
)

// adminBackend is what berthd serves on the admin service: imports and
// saves by the image service, pull progress from the puller.
type adminBackend struct {
	*image.Service
	puller *image.Puller
}

func (b adminBackend) PullProgress() []admin.PullProgress {
	active := b.puller.Active()
	out := make([]admin.PullProgress, 0, len(active))
	for _, p := range active {
		layers := make([]admin.LayerProgress, 0, len(p.Layers))
		for _, l := range p.Layers {
			layers = append(layers, admin.LayerProgress{Digest: l.Digest, Size: l.Size, Bytes: l.Bytes, State: string(l.State)})
		}
		out = append(out, admin.PullProgress{Ref: p.Ref, Endpoint: p.Endpoint, Started: p.Started, Layers: layers})
	}
	return out
}

func (b adminBackend) SaveImages(ctx context.Context, req admin.SaveRequest, w io.Writer) error {
	return b.Export(ctx, req.Images, image.ExportFormat(req.Format), w)
}
