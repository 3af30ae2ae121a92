package container

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
)

// TestCreateRefusesArtifact: an OCI artifact is mountable only; as a
// container's image it is InvalidArgument naming it, and nothing is made.
func TestCreateRefusesArtifact(t *testing.T) {
	h := newHarness(t)
	h.s.cfg.Images = fakeImages{&image.Image{ID: "sha256:art", ChainIDs: []string{"sha256:files"},
		Artifact: &image.Artifact{Type: "application/x.test", Files: []image.ArtifactFile{{Path: "a"}}}}}
	_, err := h.s.Create(context.Background(), testPod, containerConfig("app"), podConfig())
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), `"busybox" is an OCI artifact (application/x.test)`) {
		t.Errorf("create from an artifact: %v", err)
	}
	if calls := h.rt.Calls(""); len(calls) != 0 || len(h.s.List()) != 0 || len(h.containerDirs()) != 0 {
		t.Errorf("refused create left calls %q, containers %d, dirs %q", calls, len(h.s.List()), h.containerDirs())
	}
}
