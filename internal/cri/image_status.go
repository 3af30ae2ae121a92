package cri

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// ImageStatus of an absent image returns no image and no error, as CRI asks.
func (s *Server) ImageStatus(ctx context.Context, r *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.Invalid("image.image is required")
	}
	img, err := s.Images.Get(ref)
	if errdefs.IsNotFound(err) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: criImage(img)}
	if r.GetVerbose() {
		fields := map[string]any{"imageSpec": img.Config, "chainIDs": img.ChainIDs, "manifest": img.Manifest}
		if img.Artifact != nil {
			// No image config: what there is to mount instead.
			fields = map[string]any{"artifact": img.Artifact, "manifest": img.Manifest}
		}
		info, err := json.Marshal(fields)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}
