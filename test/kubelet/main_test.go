// Package kubelet runs a real kubelet (version pinned in build_test.go, built
// from the Go module proxy) against a real berthd and checks, one test per
// scenario, that the pod features operators rely on work end to end.
//
// kubelet runs standalone: static pods from a manifest directory, no API
// server and no kubeconfig, its HTTP endpoints on loopback only, its root,
// certificate and pod log directories inside the test's berthd directory.
// Images come from a loopback registry through berthd's registry mirrors.
// After every test kubelet is stopped by PID and the framework's leak check
// runs. Run alone with hack/kubelet.sh.
package kubelet

import (
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }
