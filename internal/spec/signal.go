package spec

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/moby/sys/signal"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// criSignals maps each Linux signal to its CRI Signal value. Aliases
// (SIGIOT, SIGCLD, SIGPOLL) come after the names they alias in the enum, so
// the first value seen for a number is the usual name.
var criSignals = func() map[syscall.Signal]runtimeapi.Signal {
	m := map[syscall.Signal]runtimeapi.Signal{}
	for v := range int32(len(runtimeapi.Signal_name)) {
		if sig, err := SignalFromCRI(runtimeapi.Signal(v)); err == nil {
			if _, seen := m[sig]; !seen {
				m[sig] = runtimeapi.Signal(v)
			}
		}
	}
	return m
}()

// SignalFromCRI returns the Linux signal a CRI Signal names.
// SIGNAL_RUNTIME_DEFAULT and values this CRI version does not know are
// errors (InvalidArgument).
func SignalFromCRI(s runtimeapi.Signal) (syscall.Signal, error) {
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

// SignalToCRI returns the CRI Signal for sig, or SIGNAL_RUNTIME_DEFAULT for
// a number CRI has no name for.
func SignalToCRI(sig syscall.Signal) runtimeapi.Signal {
	return criSignals[sig]
}

// StopSignal is the signal that stops a container gracefully: stopSignal
// (a name such as "SIGQUIT", "QUIT", "RTMIN+3" or a number, from the CRI
// config or the image) when it names a Linux signal, else SIGTERM.
func StopSignal(stopSignal string) syscall.Signal {
	if stopSignal != "" {
		if sig, err := signal.ParseSignal(stopSignal); err == nil && signal.ValidSignalForPlatform(sig) {
			return sig
		}
	}
	return syscall.SIGTERM
}
