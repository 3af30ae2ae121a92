package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
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
	socket  string // --socket; see endpoint for what is used
	timeout time.Duration
	output  string
	debug   bool
	noTrunc bool

	// timeoutSet reports whether --timeout was given; long operations (pull,
	// import, exec, run) only take a deadline when it was.
	timeoutSet func() bool

	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger

	getenv func(string) string
	ep     endpoint
	dial   dialRecorder
	conn   *grpc.ClientConn
	rt     runtimeapi.RuntimeServiceClient
	img    runtimeapi.ImageServiceClient
	adm    *admin.Client
}

// execute runs the CLI with args and returns the process exit code.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	defer a.close()
	// A bug must not greet the user with a goroutine dump: one line, and
	// the stack only under --debug.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "berth: internal error: %v (please report this)\n", r)
			if a.debug {
				stderr.Write(debug.Stack())
			}
			code = exitBerth
		}
	}()
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if !errors.As(err, &ee) || ee.err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
	}
	return exitCode(err)
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Command-line client for the berth container runtime",
		Long: "berth talks to berthd over the CRI v1 gRPC API on its unix socket.\n" +
			"ID arguments accept a unique ID prefix or a name.\n\n" + endpointHelp + "\n\n" +
			"Exit status: 125 when berth or the runtime failed; for exec and run the command's own\n" +
			"status, 126 when it cannot be invoked, 127 when it is not found.",
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if a.debug {
				level = slog.LevelDebug
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			return checkFormat(a.output)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", "", "runtime endpoint, unix:///path or /path (default: see above)")
	pf.StringVar(&a.socket, "runtime-endpoint", "", "the same as --socket (crictl's name)")
	_ = pf.MarkHidden("runtime-endpoint")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline for each request; for pull, import, save, exec and run only when given")
	pf.StringVarP(&a.output, "output", "o", "", "output format: table, json, yaml or go-template=TEMPLATE (fields as in json)")
	pf.BoolVar(&a.noTrunc, "no-trunc", false, "show whole IDs in tables")
	pf.BoolVar(&a.debug, "debug", false, "log each request to stderr")
	a.timeoutSet = func() bool { return pf.Changed("timeout") }
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
	})

	root.AddCommand(
		versionCmd(a), infoCmd(a),
		withWatch(a, podsCmd(a)), inspectpCmd(a), runpCmd(a), stoppCmd(a), rmpCmd(a),
		withWatch(a, psCmd(a)), inspectCmd(a), createCmd(a), startCmd(a), stopCmd(a), rmCmd(a),
		logsCmd(a), withWatch(a, statsCmd(a)), execCmd(a),
		imagesCmd(a), inspectiCmd(a), pullCmd(a), rmiCmd(a), imageCmd(a),
		runCmd(a),
		attachCmd(a), portForwardCmd(a), withWatch(a, statspCmd(a)), eventsCmd(a),
		imageFsInfoCmd(a), runtimeConfigCmd(a), updateCmd(a), loadCmd(a), saveCmd(a),
	)
	return root
}

// connect dials berthd once; grpc dials lazily, so an absent daemon shows up
// as Unavailable on the first call.
func (a *app) connect() error {
	if a.conn != nil {
		return nil
	}
	ep, err := resolveEndpoint(a.socket, a.getenv)
	if err != nil {
		return err
	}
	a.ep = ep
	// Our own dialer, so that a failed call can tell a daemon that is not
	// there from one that answered (see describe).
	conn, err := grpc.NewClient(ep.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return a.dial.dial(ctx, ep.path()) }),
		grpc.WithUnaryInterceptor(a.unaryInterceptor),
		grpc.WithStreamInterceptor(a.streamInterceptor),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", ep.addr, err)
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
// rpcError, which says in words what happened.
func (a *app) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	if a.log != nil {
		a.log.Debug("rpc", "method", method, "duration", time.Since(start), "code", status.Code(err), "error", err)
	}
	return a.wordError(err)
}

// streamInterceptor does the same for streaming calls: the stream's errors
// (from opening it and from each receive) are put in words.
func (a *app) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if a.log != nil {
		a.log.Debug("rpc stream", "method", method)
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, a.wordError(err)
	}
	return &wordStream{ClientStream: s, a: a}, nil
}

type wordStream struct {
	grpc.ClientStream
	a *app
}

func (s *wordStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == io.EOF {
		return err
	}
	return s.a.wordError(err)
}

func (a *app) wordError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return &rpcError{st: st, msg: describe(st, a.ep, a.timeout.String(), &a.dial)}
}

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
