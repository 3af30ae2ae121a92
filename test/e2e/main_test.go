// Package e2e drives a real berthd over its CRI socket: real runc, conmon
// and overlayfs, with images built from the host's busybox-static. Run as
// root: go test ./test/e2e/ -count=1 -v
package e2e

import (
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }
