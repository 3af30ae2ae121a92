package nri

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	nrilog "github.com/containerd/nri/pkg/log"
)

// slogger routes the NRI library's printf-style logging into berth's
// structured log instead of logrus.
type slogger struct{ l *slog.Logger }

func (s slogger) Debugf(ctx context.Context, f string, a ...any) {
	s.l.DebugContext(ctx, fmt.Sprintf(f, a...))
}
func (s slogger) Infof(ctx context.Context, f string, a ...any) {
	// The library is chatty at info level (every plugin call, invocation
	// order); berth keeps that at debug.
	s.l.DebugContext(ctx, fmt.Sprintf(f, a...))
}
func (s slogger) Warnf(ctx context.Context, f string, a ...any) {
	s.l.WarnContext(ctx, fmt.Sprintf(f, a...))
}
func (s slogger) Errorf(ctx context.Context, f string, a ...any) {
	s.l.ErrorContext(ctx, fmt.Sprintf(f, a...))
}

var setLoggerOnce sync.Once

// setLogger installs the adapter; the library's logger is process-wide.
func setLogger(l *slog.Logger) {
	setLoggerOnce.Do(func() { nrilog.Set(slogger{l.With("component", "nri-lib")}) })
}
