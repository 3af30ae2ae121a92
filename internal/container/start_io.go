package container

import (
	"context"
	"fmt"
	"os"

	"github.com/berth-project/berth/internal/oci"
)

// startRuntime runs the runtime's start. For handlers whose containers run
// inside a pod sandbox (runsc), the start must carry the container's stdio:
// the waiter berthd's runsc shim left under conmon (the container's pid in
// the record) holds conmon's pipes, and they are reopened through /proc.
func (s *Service) startRuntime(ctx context.Context, rt *oci.Runtime, c *Container) error {
	if _, ok := s.cfg.MonitorRuntimes[c.Runtime]; !ok {
		return rt.Start(ctx, c.ID)
	}
	var files [3]*os.File
	for i, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_WRONLY} {
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", c.Pid, i), flag, 0)
		if err != nil {
			for _, g := range files[:i] {
				g.Close()
			}
			return fmt.Errorf("container %s: open its stdio for %s start (waiter pid %d): %w", c.ID, rt.Name, c.Pid, err)
		}
		files[i] = f
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	return rt.StartWithIO(ctx, c.ID, files[0], files[1], files[2])
}
