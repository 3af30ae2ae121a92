package container

import (
	"errors"
	"fmt"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/oci"
)

func TestStoppedWithoutMonitor(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *oci.State
		err  error
		want bool
	}{
		{"stopped", &oci.State{Status: oci.StatusStopped}, nil, true},
		{"unknown to the runtime", nil, fmt.Errorf("runc state x: container does not exist: %w", errdefs.ErrNotFound), true},
		{"running", &oci.State{Status: oci.StatusRunning}, nil, false},
		{"paused", &oci.State{Status: oci.StatusPaused}, nil, false},
		{"created", &oci.State{Status: oci.StatusCreated}, nil, false},
		{"runtime failed", nil, errors.New("runc state x: exec: signal: killed"), false},
		{"no state", nil, nil, false},
	} {
		if got := stoppedWithoutMonitor(tc.st, tc.err); got != tc.want {
			t.Errorf("%s: stoppedWithoutMonitor = %v, want %v", tc.name, got, tc.want)
		}
	}
}
