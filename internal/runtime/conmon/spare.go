package conmon

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/host"
)

// Spares keeps spareCount berth-monitors started ahead of the next
// container creates, waiting for their command line (`berth-monitor
// --spare`): the monitor's exec and its fork to the background, about 3
// ms on the project's machines, are then off the create's path. A create
// takes a spare when there is one, and the spares taken are started again
// in the background once the pod start is over (see take); a create that
// finds none (they are still starting, or other creates took them) starts
// its monitor as before. conmon has no such mode: a nil *Spares (see
// NewSpares) never has a spare.
//
// A spare holds nothing of a container. It exits when its command line
// pipe closes without a job: when berthd closes it (Close) or dies, so a
// crashed berthd leaves no spare behind.
type Spares struct {
	path string
	log  *slog.Logger

	mu       sync.Mutex
	ready    []*spare
	starting int
	closed   bool
	timer    *time.Timer // Refill after a take, unless one came first
	timerSet bool
}

// spare is a started spare monitor: the read end of its sync pipe and the
// write end of its command line pipe.
type spare struct {
	syncR, argsW *os.File
	pid          int // the spare's own pid, which its first process reports
}

// spareCount is how many spares are kept: two, so that a pod start that
// makes two monitors (a pause container through the runtime, as under
// gVisor, then the first container; or two containers) finds one for each
// before they are made again after it.
const spareCount = 2

// sparePad is the spare's padding argument: the room its real command
// line is written over, so that /proc/<pid>/cmdline names the container's
// files as an exec'd monitor's does (ConmonAlive and the orphan reaper
// find monitors by it).
var sparePad = strings.Repeat("-", 8192)

// NewSpares returns the spares of monitorPath, or nil when it is not
// berth-monitor. The first spare starts in the background.
func NewSpares(monitorPath string, log *slog.Logger) *Spares {
	if filepath.Base(monitorPath) != "berth-monitor" {
		return nil
	}
	s := &Spares{path: monitorPath, log: log}
	s.mu.Lock()
	s.refillLocked()
	s.mu.Unlock()
	return s
}

// take returns the spare for a command line of args, or nil (then the
// caller execs a monitor). The spares taken start again at Refill, which
// berthd calls once the pod start calls are over, or refillAfter after
// the take when they never are: started at once, they would compete for
// the CPU with the create and start a pod start waits on.
func (s *Spares) take(args []string) *spare {
	if s == nil || !s.fits(args) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ready) == 0 {
		return nil
	}
	sp := s.ready[len(s.ready)-1]
	s.ready = s.ready[:len(s.ready)-1]
	if !s.timerSet && !s.closed {
		s.timerSet = true
		s.timer = time.AfterFunc(refillAfter, s.Refill)
	}
	return sp
}

// refillAfter is how long after a take the next spare starts when no
// Refill comes first.
const refillAfter = time.Second

// Refill starts the next spare unless one is waiting or starting.
func (s *Spares) Refill() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timerSet {
		s.timer.Stop()
		s.timerSet = false
	}
	s.refillLocked()
}

// fits says whether args fit over the spare's own command line.
func (s *Spares) fits(args []string) bool {
	need := len("berth-monitor") + 1
	for _, a := range args {
		need += len(a) + 1
	}
	return need <= len(s.path)+1+len("--spare")+1+len(sparePad)
}

func (s *Spares) refillLocked() {
	for !s.closed && len(s.ready)+s.starting < spareCount {
		s.starting++
		go func() {
			sp, err := s.start()
			s.mu.Lock()
			defer s.mu.Unlock()
			s.starting--
			switch {
			case err != nil:
				// The next create execs its monitor and tries again.
				s.log.Warn("starting a spare container monitor", "err", err)
			case s.closed:
				sp.close()
			default:
				s.ready = append(s.ready, sp)
			}
		}()
	}
}

// start starts one spare and waits for its first process, which exits
// once the spare runs in the background.
func (s *Spares) start() (*spare, error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	argsR, argsW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		syncW.Close()
		return nil, err
	}
	cmd := exec.Command(s.path, "--spare", sparePad)
	var out bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &out, max: 64} // the spare's pid
	cmd.Env = monitorEnv()
	cmd.ExtraFiles = []*os.File{syncW, argsR} // fds 3 and 4
	// Its own process group, as an exec'd monitor's (see Create).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	syncW.Close()
	argsR.Close()
	if err == nil {
		err = cmd.Wait()
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(out.String()))
	if err == nil && (perr != nil || pid <= 0) {
		err = fmt.Errorf("reported pid %q", out.String())
	}
	if err != nil {
		syncR.Close()
		argsW.Close()
		return nil, fmt.Errorf("%s --spare: %w", s.path, err)
	}
	return &spare{syncR: syncR, argsW: argsW, pid: pid}, nil
}

// kill ends a spare that has its job but whose create was abandoned
// before it wrote its pid file; the process is checked to be this spare
// (a monitor of this binary, under its spare or its new command line),
// not a reused pid.
func (sp *spare) kill() {
	args, err := host.Process(sp.pid).Cmdline()
	if err != nil || len(args) < 2 || filepath.Base(args[0]) != "berth-monitor" {
		return
	}
	_ = syscall.Kill(sp.pid, syscall.SIGKILL)
	host.WaitGone(sp.pid, 2*time.Second)
}

// give hands the spare its command line; from then on it is the
// container's monitor.
func (sp *spare) give(args []string) error {
	block := strings.Join(args, "\x00") + "\x00"
	_, err := sp.argsW.WriteString(block)
	// Once written, the job is the spare's whatever Close says: falling
	// back to an exec'd monitor then would make two.
	sp.argsW.Close()
	if errors.Is(err, syscall.EPIPE) {
		err = errors.New("the spare monitor is gone")
	}
	return err
}

func (sp *spare) close() {
	sp.argsW.Close() // the spare exits
	sp.syncR.Close()
}

// Close ends the waiting spares.
func (s *Spares) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timerSet {
		s.timer.Stop()
		s.timerSet = false
	}
	for _, sp := range s.ready {
		sp.close()
	}
	s.ready = nil
}
