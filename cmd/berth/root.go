package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/admin"
)

const defaultSocket = "unix:///run/berth/berth.sock"

// version is the client's version, set at build time with
// -ldflags "-X main.version=...".
var version = "dev"

// app holds the global flags and the lazily dialled connection shared by all
// verbs.
type app struct {
	socket  string
	timeout time.Duration
	output  string
	debug   bool

	// timeoutSet reports whether --timeout was given; long operations (pull,
	// import, exec, run) only take a deadline when it was.
	timeoutSet func() bool

	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger

	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient
	adm  *admin.Client
}

// exitCodeError ends the program with code and prints nothing: the command
// already said what it had to (exec and run pass on their command's status).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// execute runs the CLI with args and returns the process exit code.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.close()
	if err == nil {
		return 0
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	fmt.Fprintf(stderr, "berth: %v\n", err)
	return 1
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Command-line client for the berth container runtime",
		Long: "berth talks to berthd over the CRI v1 gRPC API on its unix socket.\n" +
			"ID arguments accept a unique ID prefix or a name.",
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if a.debug {
				level = slog.LevelDebug
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			switch a.output {
			case "", "table", "json", "yaml":
			default:
				return fmt.Errorf("unknown output format %q: use table, json or yaml", a.output)
			}
			return nil
		},
	}
	socket := os.Getenv("BERTH_SOCKET")
	if socket == "" {
		socket = defaultSocket
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", socket, "berthd endpoint (env BERTH_SOCKET)")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline for each request; for pull, import, exec and run only when given")
	pf.StringVarP(&a.output, "output", "o", "", "output format: table, json or yaml")
	pf.BoolVar(&a.debug, "debug", false, "log each request to stderr")
	a.timeoutSet = func() bool { return pf.Changed("timeout") }
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
	})

	root.AddCommand(
		versionCmd(a), infoCmd(a),
		podsCmd(a), inspectpCmd(a), runpCmd(a), stoppCmd(a), rmpCmd(a),
		psCmd(a), inspectCmd(a), createCmd(a), startCmd(a), stopCmd(a), rmCmd(a),
		logsCmd(a), statsCmd(a), execCmd(a),
		imagesCmd(a), inspectiCmd(a), pullCmd(a), rmiCmd(a), imageCmd(a),
		runCmd(a),
	)
	return root
}

// connect dials berthd once; grpc dials lazily, so an absent daemon shows up
// as Unavailable on the first call.
func (a *app) connect() error {
	if a.conn != nil {
		return nil
	}
	target := a.socket
	if strings.HasPrefix(target, "/") {
		target = "unix://" + target
	}
	if !strings.HasPrefix(target, "unix:") {
		return fmt.Errorf("socket %q: only unix sockets are supported (unix:///path)", a.socket)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(a.unaryInterceptor),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", a.socket, err)
	}
	a.conn = conn
	a.rt = runtimeapi.NewRuntimeServiceClient(conn)
	a.img = runtimeapi.NewImageServiceClient(conn)
	a.adm = admin.NewClient(conn)
	return nil
}

func (a *app) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

// unaryInterceptor logs calls under --debug and turns gRPC errors into
// rpcError, whose text is the status message alone.
func (a *app) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	if a.log != nil {
		a.log.Debug("rpc", "method", method, "duration", time.Since(start), "error", err)
	}
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return &rpcError{st: st, socket: a.socket}
}

// rpcError prints as the status message (not "rpc error: code = ...") and
// still answers status.FromError / status.Code.
type rpcError struct {
	st     *status.Status
	socket string
}

func (e *rpcError) Error() string {
	switch e.st.Code() {
	case codes.Unavailable:
		// grpc wraps the dial error as `connection error: desc = "..."`.
		msg := strings.TrimPrefix(e.st.Message(), "connection error: desc = ")
		if u, err := strconv.Unquote(msg); err == nil {
			msg = u
		}
		return fmt.Sprintf("cannot reach berthd at %s (is it running?): %s", e.socket, msg)
	case codes.DeadlineExceeded:
		return e.st.Message() + " (raise --timeout?)"
	case codes.Unimplemented:
		return "berthd does not implement this yet: " + e.st.Message()
	}
	return e.st.Message()
}

func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// ctx returns a context bounded by --timeout, after connecting.
func (a *app) ctx(parent context.Context) (context.Context, context.CancelFunc, error) {
	if err := a.connect(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(parent, a.timeout)
	return ctx, cancel, nil
}

// longCtx is ctx for operations that may legitimately take long: bounded
// only when --timeout was given, plus extra.
func (a *app) longCtx(parent context.Context, extra time.Duration) (context.Context, context.CancelFunc, error) {
	if err := a.connect(); err != nil {
		return nil, nil, err
	}
	if a.timeoutSet() && a.timeout > 0 {
		ctx, cancel := context.WithTimeout(parent, a.timeout+extra)
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithCancel(parent)
	return ctx, cancel, nil
}

// isNotFound reports whether err is a gRPC NotFound.
func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }
