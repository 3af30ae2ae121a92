package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// gVisor runs a pod as one sandbox: a pod's containers live inside the
// sandbox's Sentry, and no host process of theirs is a child of conmon.
// conmon waits for the container pid the runtime wrote and quits as soon as
// it has no child left (ECHILD), so under plain runsc every container would
// "exit" at once with status -1. conmon therefore runs runsc through this
// shim: after `runsc create` it leaves a waiter process behind, puts the
// waiter's pid in the pid file, and the waiter ends the way the container
// does (`runsc wait`). Everything else (start, kill, delete, exec) goes to
// runsc directly.
//
// The waiter is /bin/sh running runscWaiterScript, not a berthd: the shell
// costs about 0.2 MiB where a Go waiter cost 10 MiB per container
// (docs/PERFORMANCE.md). What stays per container is conmon, the shell and
// its `runsc wait`, which is the only way to learn a sub-container's exit
// (the Sentry answers it over its control socket).

// RunscShimCommand is the hidden berthd subcommand the shim script reaches
// (cmd/berthd runs RunscShim for it).
const RunscShimCommand = "runsc-shim"

// runscWaiterScript is the waiter: sh -c SCRIPT runsc-waiter RUNSC ID
// GLOBAL-ARGS... It holds the container's stdio (conmon's pipes) until the
// container has started, so that berthd can hand them to `runsc start`
// (through /proc/<pid>/fd), which is where runsc takes a sub-container's
// stdio from; `runsc wait` refuses a container that has not started, so it
// polls the state until then. Then it lets the pipes go (the Sentry holds
// its own copies) and exits with the container's status: runsc wait
// prints {"id":...,"exitStatus":N}, N being the code or 128+signal
// (runsc/cmd/wait.go, exitStatus). A container removed before it ran, or
// a sandbox that died, gives 137.
const runscWaiterScript = `trap '' HUP INT TERM
runsc=$1 id=$2
shift 2
d=0.02
while st=$("$runsc" "$@" state "$id" 2>/dev/null); do
	case $st in
	*'"status": "created"'* | *'"status": "creating"'*) ;;
	*) break ;;
	esac
	sleep $d
	case $d in 0.02) d=0.05 ;; 0.05) d=0.1 ;; 0.1) d=0.2 ;; *) d=0.5 ;; esac
done
exec </dev/null >/dev/null 2>&1
out=$("$runsc" "$@" wait "$id") || exit 137
code=${out##*'"exitStatus":'}
code=${code%%[!0-9]*}
exit "${code:-255}"
`

// writeRunscShim writes the executable script conmon is given as its
// runtime for the runsc handler rt, and returns its path.
func writeRunscShim(stateDir string, rt *cli) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate berthd for the runsc shim: %w", err)
	}
	dir := filepath.Join(stateDir, "runtimes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	script := filepath.Join(dir, rt.name+".conmon-shim")
	body := fmt.Sprintf("#!/bin/sh\n# conmon's runtime for handler %s (gVisor); see berthd runsc-shim.\nexec %s %s %s \"$@\"\n",
		rt.name, shellQuote(self), RunscShimCommand, shellQuote(rt.path))
	if err := os.WriteFile(script+".tmp", []byte(body), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(script+".tmp", script); err != nil {
		return "", err
	}
	return script, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// RunscShim is `berthd runsc-shim RUNSC ARGS...`, which conmon runs as its
// runtime: it runs runsc with args; for create it then starts the waiter.
func RunscShim(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "berthd runsc-shim: usage: runsc-shim RUNSC ARGS...")
		return 2
	}
	runsc, rest := args[0], args[1:]
	sub := slices.Index(rest, "create")
	cmd := exec.Command(runsc, rest...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "berthd runsc-shim:", err)
		return 1
	}
	if sub < 0 {
		return 0
	}
	globals, createArgs := rest[:sub], rest[sub+1:]
	pidFile := flagValue(createArgs, "--pid-file")
	if pidFile == "" || len(createArgs) == 0 {
		return 0
	}
	id := createArgs[len(createArgs)-1]
	w := exec.Command("/bin/sh", append([]string{"-c", runscWaiterScript, "runsc-waiter", runsc, id}, globals...)...)
	// Its own session, holding the container's stdio (see
	// runscWaiterScript). When this shim exits it is reparented to conmon
	// (a child subreaper).
	w.Stdin, w.Stdout, w.Stderr = os.Stdin, os.Stdout, os.Stderr
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd runsc-shim: start waiter:", err)
		return 1
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(w.Process.Pid)), 0o644); err != nil {
		w.Process.Kill()
		fmt.Fprintln(os.Stderr, "berthd runsc-shim: write pid file:", err)
		return 1
	}
	return 0
}

// flagValue finds "--name value" or "--name=value" in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
