package image

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

// TestHoldRefusesRemove: an image held by a container's image volume
// cannot be removed (by tag or id) until every holder lets go.
func TestHoldRefusesRemove(t *testing.T) {
	e, img := leaseEnv(t)
	ctx := context.Background()
	if _, err := e.s.HoldImage("a:1", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.HoldImage(img.ID, "c2"); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"a:1", img.ID} {
		err := e.s.Remove(ctx, ref, nil)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "c1, c2") {
			t.Errorf("Remove(%s) of a held image: %v", ref, err)
		}
	}
	e.s.Unhold("c1")
	if err := e.s.Remove(ctx, "a:1", nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Remove with one holder left: %v", err)
	}
	e.s.Unhold("c2")
	if err := e.s.Remove(ctx, "a:1", nil); err != nil {
		t.Errorf("Remove once released: %v", err)
	}
	if _, err := e.s.HoldImage("a:1", "c3"); !errdefs.IsNotFound(err) {
		t.Errorf("HoldImage of a removed image: %v", err)
	}
}
