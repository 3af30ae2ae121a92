package oci

import (
	"syscall"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/runtime"
)

// SignalFromCRI is runtime.SignalFromCRI, for spec validation. The signal
// helpers moved to internal/runtime with the runtime driver; this forwarder
// goes once spec validation imports them from there.
func SignalFromCRI(s runtimeapi.Signal) (syscall.Signal, error) { return runtime.SignalFromCRI(s) }
