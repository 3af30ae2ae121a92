package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/image"
)

func (s *Server) ListImages(ctx context.Context, r *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.listImages(r.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListImagesResponse{Images: imgs}, nil
}

func (s *Server) StreamImages(r *runtimeapi.StreamImagesRequest, stream runtimeapi.ImageService_StreamImagesServer) error {
	imgs, err := s.listImages(r.GetFilter())
	if err != nil {
		return err
	}
	return sendBatches(imgs, func(b []*runtimeapi.Image) error {
		return stream.Send(&runtimeapi.StreamImagesResponse{Images: b})
	})
}

// listImages applies the CRI filter: an image reference naming one image.
func (s *Server) listImages(f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if ref := f.GetImage().GetImage(); ref != "" {
		img, err := s.Images.Get(ref)
		if err != nil {
			return nil, nil //nolint:nilerr // a filter naming nothing lists nothing
		}
		return []*runtimeapi.Image{criImage(img)}, nil
	}
	var out []*runtimeapi.Image
	for _, img := range s.Images.List() {
		out = append(out, criImage(img))
	}
	return out, nil
}

func criImage(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Pinned:      img.Pinned,
		Spec:        &runtimeapi.ImageSpec{Image: img.ID},
	}
	if u := img.Config.Config.User; u != "" {
		// CRI reports a numeric user as uid and anything else as username,
		// taking the part before any ":group".
		user := strings.SplitN(u, ":", 2)[0]
		if uid, ok := parseUID(user); ok {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}

func parseUID(s string) (int64, bool) {
	var v int64
	if s == "" {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		v = v*10 + int64(r-'0')
		if v > 1<<32 {
			return 0, false
		}
	}
	return v, true
}
