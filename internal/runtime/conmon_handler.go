package runtime

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/runtime/conmon"
)

// conmonHandler runs containers of runc and runtimes with its command line
// under conmon: conmon runs the runtime's create, holds the container's
// stdio and records its exit; every other command goes to the runtime.
type conmonHandler struct {
	rt         *cli
	conmonPath string
	spares     *conmon.Spares // monitors started ahead; nil for conmon
	exitDir    string         // shared by all handlers: conmon writes <exitDir>/<id>
	monitorRT  conmon.Runtime // what conmon runs for the create: rt, or a shim
	features   Features
	spec       SpecSettings
	// fifoStart: the binary is runc, whose start this handler can do
	// itself (see fifoStart).
	fifoStart bool
	// holdsFifo: the monitor is berth-monitor, which holds the exec fifo
	// open when asked (conmon.HoldExecFifo).
	holdsFifo bool
}

func (h *conmonHandler) Name() string               { return h.rt.name }
func (h *conmonHandler) Features() Features         { return h.features }
func (h *conmonHandler) SpecSettings() SpecSettings { return h.spec }

func (h *conmonHandler) Create(ctx context.Context, o CreateOptions) (Process, error) {
	p, err := conmon.Create(ctx, conmon.Config{
		ConmonPath: h.conmonPath,
		Spares:     h.spares,
		Runtime:    h.monitorRT,
		ID:         o.ID,
		BundleDir:  o.BundleDir,
		Dir:        o.BundleDir,
		ExitDir:    h.exitDir,
		LogPath:    o.LogPath,
		Terminal:   o.Terminal,
		Stdin:      o.Stdin,
		StdinOnce:  o.StdinOnce,
	})
	if err != nil {
		return Process{}, err
	}
	return Process{Pid: p.Pid, ConmonPid: p.ConmonPid}, nil
}

func (h *conmonHandler) CreateUnmonitored(ctx context.Context, id, bundle string) error {
	return h.rt.Create(ctx, id, bundle)
}

func (h *conmonHandler) Start(ctx context.Context, id, dir string) error {
	if h.fifoStart && h.rt.root != "" && dir != "" {
		var hold func(string) error
		if h.holdsFifo {
			hold = func(fifo string) error {
				err := conmon.HoldExecFifo(ctx, dir, fifo)
				if errors.Is(err, conmon.ErrNoHold) {
					// A monitor older than the hold, or no inotify: the
					// start goes on with the window the hold closes.
					slog.Warn("starting without the monitor holding the exec fifo", "container", id, "err", err)
				}
				return err
			}
		}
		if err := fifoStart(ctx, h.rt.root, id, dir, hold); !errors.Is(err, errNoFifoStart) {
			return err
		}
	}
	return h.rt.Start(ctx, id)
}

// FinishCutStart finishes a start that a kill of berthd cut short after
// the container's process began (see finishCutStart); berthd's start-up
// asks it of containers the runtime still calls created.
func (h *conmonHandler) FinishCutStart(id string) (bool, error) {
	if !h.fifoStart || h.rt.root == "" {
		return false, nil
	}
	return finishCutStart(h.rt.root, id)
}

func (h *conmonHandler) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	return h.rt.Kill(ctx, id, sig, all)
}

func (h *conmonHandler) Delete(ctx context.Context, id string, force bool) error {
	return h.rt.Delete(ctx, id, force)
}

func (h *conmonHandler) State(ctx context.Context, id string) (*State, error) {
	return h.rt.State(ctx, id)
}

func (h *conmonHandler) List(ctx context.Context) ([]State, error) { return h.rt.List(ctx) }

func (h *conmonHandler) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	return h.rt.Update(ctx, id, res)
}

// Exec runs the runtime's own exec, in the foreground: no monitor.
func (h *conmonHandler) Exec(ctx context.Context, id string, o ExecOptions) (int, error) {
	return h.rt.ExecProcess(ctx, id, o)
}

func (h *conmonHandler) Attach(ctx context.Context, dir string, o AttachOptions) error {
	return conmon.Attach(ctx, dir, o)
}

func (h *conmonHandler) Resize(dir string, ws WinSize) error {
	return conmon.Resize(dir, ws.Width, ws.Height)
}

func (h *conmonHandler) ReopenLog(ctx context.Context, dir, logPath string) error {
	return conmon.ReopenLog(ctx, dir, logPath)
}

func (h *conmonHandler) ReadExit(id, dir string) (Exit, bool, error) {
	return conmon.ReadExit(h.exitDir, dir, id)
}

func (h *conmonHandler) RemoveExit(id string) error { return conmon.RemoveExit(h.exitDir, id) }

func (h *conmonHandler) MonitorAlive(dir string) (int, bool) { return conmon.ConmonAlive(dir) }

func (h *conmonHandler) PendingStarts() []int { return h.rt.pendingStarts() }
