package spec

import (
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestSignalFromCRI(t *testing.T) {
	for in, want := range map[runtimeapi.Signal]syscall.Signal{
		runtimeapi.Signal_SIGNAL_SIGTERM:         syscall.SIGTERM,
		runtimeapi.Signal_SIGNAL_SIGUSR1:         syscall.SIGUSR1,
		runtimeapi.Signal_SIGNAL_SIGQUIT:         syscall.SIGQUIT,
		runtimeapi.Signal_SIGNAL_SIGCLD:          syscall.SIGCHLD,
		runtimeapi.Signal_SIGNAL_SIGIOT:          syscall.SIGABRT,
		runtimeapi.Signal_SIGNAL_SIGPOLL:         syscall.SIGIO,
		runtimeapi.Signal_SIGNAL_SIGRTMIN:        34,
		runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3:   37,
		runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS14: 50,
		runtimeapi.Signal_SIGNAL_SIGRTMAX:        64,
	} {
		got, err := SignalFromCRI(in)
		if err != nil || got != want {
			t.Errorf("SignalFromCRI(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []runtimeapi.Signal{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, 99} {
		if _, err := SignalFromCRI(bad); !errdefs.IsInvalid(err) {
			t.Errorf("SignalFromCRI(%d): %v, want InvalidArgument", bad, err)
		}
	}
}

// Every CRI signal maps to a Linux signal and back to itself, or to the
// name it aliases.
func TestSignalToCRIRoundTrip(t *testing.T) {
	aliases := map[runtimeapi.Signal]runtimeapi.Signal{
		runtimeapi.Signal_SIGNAL_SIGCLD:  runtimeapi.Signal_SIGNAL_SIGCHLD,
		runtimeapi.Signal_SIGNAL_SIGIOT:  runtimeapi.Signal_SIGNAL_SIGABRT,
		runtimeapi.Signal_SIGNAL_SIGPOLL: runtimeapi.Signal_SIGNAL_SIGIO,
	}
	for v := range runtimeapi.Signal_name {
		s := runtimeapi.Signal(v)
		if s == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
			continue
		}
		sig, err := SignalFromCRI(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		want := s
		if a, ok := aliases[s]; ok {
			want = a
		}
		if got := SignalToCRI(sig); got != want {
			t.Errorf("%s -> %d -> %s, want %s", s, sig, got, want)
		}
	}
	if got := SignalToCRI(200); got != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		t.Errorf("SignalToCRI(200) = %s", got)
	}
}

func TestStopSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"":           syscall.SIGTERM,
		"SIGQUIT":    syscall.SIGQUIT,
		"usr1":       syscall.SIGUSR1,
		"9":          syscall.SIGKILL,
		"SIGRTMIN+3": 37,
		"SIGBOGUS":   syscall.SIGTERM, // image config is data: a bad one is not obeyed
		"200":        syscall.SIGTERM,
	} {
		if got := StopSignal(in); got != want {
			t.Errorf("StopSignal(%q) = %d, want %d", in, got, want)
		}
	}
}
