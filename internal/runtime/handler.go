// Package runtime drives the OCI runtimes containers run under: one Handler
// per RuntimeClass handler, built once from the config into a Registry.
// A Handler is everything berth does with a runtime: create under conmon,
// start, signal, delete, query, exec, attach, terminal resize, resource
// update, log reopen and the exit conmon records. Two implementations: runc
// and runtimes with its command line (crun...), and gVisor's runsc, which
// runs a pod as one sandbox and needs its own start and a shim under conmon.
// Nothing outside this package tells handlers apart by their binary.
package runtime

import (
	"context"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/runtime/conmon"
)

// Handler is one RuntimeClass handler.
//
// Containers created with Create live under conmon; dir is their bundle
// dir, where conmon also keeps its files (pid files, attach socket, control
// fifo, the persist copy of the exit). A container made with
// CreateUnmonitored (the pause process) has no monitor and no dir.
type Handler interface {
	// Name is the RuntimeClass handler name.
	Name() string
	// Features is what the handler supports.
	Features() Features
	// SpecSettings is how container specs differ for this handler.
	SpecSettings() SpecSettings

	// Create creates a container from its bundle under conmon, which
	// holds its stdio, writes its log and records its exit. It returns
	// once the container is created (not started); a failed create
	// leaves nothing behind.
	Create(ctx context.Context, o CreateOptions) (Process, error)
	// CreateUnmonitored creates a container with no monitor: stdio is
	// /dev/null and nothing waits for it (the pod's pause process).
	CreateUnmonitored(ctx context.Context, id, bundle string) error
	// Start runs a created container's process.
	Start(ctx context.Context, id, dir string) error
	// Kill signals the container's init, or all its processes.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Delete removes the runtime's state of a container (and its cgroup);
	// force kills a running one first. An absent container is fine.
	Delete(ctx context.Context, id string, force bool) error
	// State reports one container; an absent one is an error wrapping
	// errdefs.ErrNotFound.
	State(ctx context.Context, id string) (*State, error)
	// List reports every container of the handler.
	List(ctx context.Context) ([]State, error)
	// Update applies new resource limits to a running container.
	Update(ctx context.Context, id string, res *specs.LinuxResources) error

	// Exec runs a process in a running container and waits for it (see
	// ExecOptions); the result is its exit code.
	Exec(ctx context.Context, id string, o ExecOptions) (int, error)
	// Attach joins a running container's stdio until its output ends,
	// ctx ends or the client's input ends.
	Attach(ctx context.Context, dir string, o AttachOptions) error
	// Resize sets a terminal container's window size.
	Resize(dir string, ws WinSize) error
	// ReopenLog makes the monitor reopen the container's log file at
	// logPath (kubelet's log rotation) and returns once it exists.
	ReopenLog(ctx context.Context, dir, logPath string) error

	// ReadExit reads the exit the monitor recorded; ok is false while
	// none is recorded.
	ReadExit(id, dir string) (ex Exit, ok bool, err error)
	// RemoveExit removes the recorded exit once the caller has its own
	// record of it (or the container is gone).
	RemoveExit(id string) error
	// MonitorAlive reports the container's monitor (conmon) process.
	MonitorAlive(dir string) (pid int, alive bool)
	// PendingStarts lists the handler's start commands still running
	// (left by a berthd that crashed during a start), so that a restart
	// reconciles settled state.
	PendingStarts() []int
}

// Features says what a handler supports.
type Features struct {
	// RecursiveReadOnlyMounts: the runtime applies "rro" mounts (configured,
	// or found with `<runtime> features` on a kernel with mount_setattr).
	RecursiveReadOnlyMounts bool
	// UserNamespaces: pods in user namespaces (userns_options mode POD):
	// configured, or the runtime knows user namespaces and idmapped mounts
	// and the kernel idmaps berth's filesystems (not under gVisor).
	UserNamespaces bool
	// IDMapMounts: the runtime applies mounts' uid/gid mappings
	// ("mountExtensions.idmap" in its features document).
	IDMapMounts bool
	// MountOptions are the mount options the runtime accepts (its features
	// document); nil when it has none, and then CRI mount_options are
	// refused.
	MountOptions []string
	// PodSandbox: the runtime runs a pod as one sandbox the pod's
	// containers join (gVisor). Every pod of it gets a pause container,
	// which the runtime makes the sandbox.
	PodSandbox bool
}

// SpecSettings is the handler's part of the host facts container specs
// are generated from.
type SpecSettings struct {
	PrivilegedWithoutHostDevices bool
	PodAnnotations               []string // allow-list globs
	ContainerAnnotations         []string
}

// CreateOptions describes one container for Create.
type CreateOptions struct {
	ID        string
	BundleDir string // holds config.json; the monitor keeps its files here too
	LogPath   string // CRI log file; "" for none
	Terminal  bool
	Stdin     bool
	StdinOnce bool // close stdin when the first attached client leaves
}

// Process is a created container: its init pid (for runsc, the waiter
// that stands in for it) and its monitor's pid.
type Process struct {
	Pid       int
	ConmonPid int
}

// Exit is how a container ended, as its monitor recorded it.
type Exit = conmon.Exit

// AttachOptions is one attach session's streams.
type AttachOptions = conmon.AttachIO
