package runtime

import "github.com/berth-project/berth/internal/host"

// pendingStarts returns the processes running this runtime's start on its
// root: the binary as argv[0], --root naming the root, "start <id>" last.
// conmon names the root too, but is not the runtime binary; runtime execs,
// which may last, do not end in start.
func (r *cli) pendingStarts() []int {
	if r.root == "" {
		return nil
	}
	return host.Find(func(p host.Proc) bool {
		args, err := p.Cmdline()
		return err == nil && len(args) > 2 && args[0] == r.path && hasArgPair(args, "--root", r.root) && args[len(args)-2] == "start"
	})
}

func hasArgPair(args []string, flag, value string) bool {
	for i, a := range args {
		if a == flag+"="+value || (a == flag && i+1 < len(args) && args[i+1] == value) {
			return true
		}
	}
	return false
}
