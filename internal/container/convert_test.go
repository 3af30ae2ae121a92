package container

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/spec"
)

// The CRI config's stop_signal wins over the image's; SIGTERM is the
// fallback, and status reports what Stop will send.
func TestStopSignalPrecedence(t *testing.T) {
	img := func(sig string) *image.Image {
		return &image.Image{Config: v1.ConfigFile{Config: v1.Config{StopSignal: sig}}}
	}
	for _, tc := range []struct {
		cri    runtimeapi.Signal
		image  string
		record string
		status runtimeapi.Signal
	}{
		{runtimeapi.Signal_SIGNAL_SIGUSR1, "SIGQUIT", "SIGUSR1", runtimeapi.Signal_SIGNAL_SIGUSR1},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGQUIT", "SIGQUIT", runtimeapi.Signal_SIGNAL_SIGQUIT},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "", "", runtimeapi.Signal_SIGNAL_SIGTERM},
		{runtimeapi.Signal_SIGNAL_SIGRTMINPLUS1, "", "35", runtimeapi.Signal_SIGNAL_SIGRTMINPLUS1},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "NOPE", "NOPE", runtimeapi.Signal_SIGNAL_SIGTERM},
	} {
		v, err := spec.ValidateContainer(&runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "i"}, StopSignal: tc.cri,
		}, spec.ValidatedPod(&runtimeapi.PodSandboxConfig{}), &spec.HostConfig{})
		if err != nil {
			t.Fatal(err)
		}
		got := stopSignal(v, img(tc.image))
		if got != tc.record {
			t.Errorf("cri %s, image %q: recorded %q, want %q", tc.cri, tc.image, got, tc.record)
		}
		if st := (&Container{StopSignal: got}).CRIStopSignal(); st != tc.status {
			t.Errorf("cri %s, image %q: status %s, want %s", tc.cri, tc.image, st, tc.status)
		}
	}
}
