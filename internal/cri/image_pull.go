package cri

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/metrics"
)

// PullImage pulls from the registry and returns the image id (the config
// digest), which ImageStatus, ListImages and CreateContainer accept.
// Credentials from the request are used for this pull only and never
// logged.
func (s *Server) PullImage(ctx context.Context, r *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.Invalid("image.image is required")
	}
	if s.Puller == nil {
		return nil, status.Error(codes.Unimplemented, "this berthd has no registry puller configured")
	}
	opts := image.PullOptions{}
	if a := r.GetAuth(); a != nil {
		opts.Auth = &image.Auth{
			Username:      a.GetUsername(),
			Password:      a.GetPassword(),
			Auth:          a.GetAuth(),
			IdentityToken: a.GetIdentityToken(),
			RegistryToken: a.GetRegistryToken(),
			ServerAddress: a.GetServerAddress(),
		}
	}
	// The last progress snapshot holds the bytes this pull downloaded
	// (layers already present count zero), for the pull metrics.
	var last atomic.Pointer[image.PullProgress]
	opts.Progress = func(p image.PullProgress) { last.Store(&p) }
	start := time.Now()
	img, err := s.Puller.Pull(ctx, ref, opts)
	if err != nil {
		if errors.Is(err, image.ErrAuthFailed) {
			// The message says which registry refused; the credentials
			// themselves are never part of it.
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		return nil, err
	}
	var fetched int64
	if p := last.Load(); p != nil {
		for _, l := range p.Layers {
			fetched += l.Bytes
		}
	}
	metrics.ObservePull(fetched, time.Since(start))
	return &runtimeapi.PullImageResponse{ImageRef: img.ID}, nil
}
