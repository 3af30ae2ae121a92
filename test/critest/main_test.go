// Package critest runs the Kubernetes CRI conformance suite, critest from
// cri-tools, against a real berthd: every image critest names is a
// look-alike built here and served from a loopback registry through berthd's
// registry mirrors. Specs that cannot pass on this host are in skip.txt, each
// with its reason. Run alone with hack/critest.sh.
package critest

import (
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }
