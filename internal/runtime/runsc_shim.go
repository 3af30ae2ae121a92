package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// The hidden berthd subcommands the shim script reaches (cmd/berthd runs
// RunscShim and RunscWaiter for them).
const (
	RunscShimCommand   = "runsc-shim"
	RunscWaiterCommand = "runsc-waiter"
)

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
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "berthd runsc-shim:", err)
		return 1
	}
	w := exec.Command(self, append(append([]string{RunscWaiterCommand, runsc}, globals...), id)...)
	// Its own session. It holds the container's stdio (conmon's pipes) so
	// that berthd can hand them to `runsc start` (through /proc/<pid>/fd),
	// which is where runsc takes a sub-container's stdio from. When this
	// shim exits it is reparented to conmon (a child subreaper).
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

// RunscWaiter is `berthd runsc-waiter RUNSC GLOBAL-ARGS... ID`: it waits until container id has run and exits the way it did:
// with its exit code, or killed by its signal (conmon reports 128+signal).
// `runsc wait` refuses a container that was not started yet, so the waiter
// polls the state until it leaves "created".
func RunscWaiter(args []string) int {
	if len(args) < 2 {
		return 2
	}
	runsc, globals, id := args[0], args[1:len(args)-1], args[len(args)-1]
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	delay := 20 * time.Millisecond
	for {
		out, err := exec.Command(runsc, append(append([]string(nil), globals...), "state", id)...).Output()
		if err != nil {
			return 128 + int(syscall.SIGKILL) // removed before it ran
		}
		var st struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(out, &st) == nil && st.Status != StatusCreated && st.Status != StatusCreating {
			break
		}
		time.Sleep(delay)
		delay = min(delay*2, 500*time.Millisecond)
	}
	out, err := exec.Command(runsc, append(append([]string(nil), globals...), "wait", id)...).Output()
	if err != nil {
		return 128 + int(syscall.SIGKILL)
	}
	var res struct {
		ExitStatus int `json:"exitStatus"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		return 255
	}
	ws := unix.WaitStatus(res.ExitStatus)
	if ws.Signaled() {
		sig := ws.Signal()
		signal.Reset(sig)
		_ = unix.Kill(os.Getpid(), sig)
		time.Sleep(time.Second)
		return 128 + int(sig)
	}
	return ws.ExitStatus()
}
