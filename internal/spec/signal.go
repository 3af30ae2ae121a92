package spec

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/moby/sys/signal"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// signalFromCRI returns the Linux signal a CRI stop_signal names.
// SIGNAL_RUNTIME_DEFAULT and values this CRI version does not know are
// errors (InvalidArgument).
func signalFromCRI(s runtimeapi.Signal) (syscall.Signal, error) {
	name, ok := runtimeapi.Signal_name[int32(s)]
	if !ok || s == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return 0, errdefs.Invalid(fmt.Sprintf("stop_signal %d is not a signal", int32(s)))
	}
	// SIGNAL_SIGRTMINPLUS3 -> RTMIN+3, SIGNAL_SIGRTMAXMINUS2 -> RTMAX-2.
	name = strings.TrimPrefix(name, "SIGNAL_SIG")
	name = strings.Replace(strings.Replace(name, "PLUS", "+", 1), "MINUS", "-", 1)
	sig, err := signal.ParseSignal(name)
	if err != nil {
		return 0, errdefs.Invalid(fmt.Sprintf("stop_signal %s: %v", s, err))
	}
	return sig, nil
}
