package runtime

import (
	"fmt"
	"os"
	"testing"

	"github.com/berth-project/berth/internal/cgroups"
)

// testCgroupParent holds the cgroups of this package's test containers. It
// is per package and process, so parallel packages do not share it, and it
// is removed at the end: runc deletes a container's cgroup, not the parent
// it created for it.
var testCgroupParent = fmt.Sprintf("/berth-test-runtime-%d", os.Getpid())

func TestMain(m *testing.M) {
	code := m.Run()
	if err := cgroups.Remove(testCgroupParent); err != nil {
		fmt.Fprintln(os.Stderr, "leaked test cgroup:", err)
		code = 1
	}
	os.Exit(code)
}
