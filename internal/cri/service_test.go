package cri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestToStatusCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{errdefs.Invalid("bad"), codes.InvalidArgument},
		{fmt.Errorf("x: %w", errdefs.ErrNotFound), codes.NotFound},
		{errdefs.Exhausted("layer too big"), codes.ResourceExhausted},
		{fmt.Errorf("create snapshot dir: %w", &fs.PathError{Op: "mkdir", Path: "/r/c", Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{fmt.Errorf("write: %w", syscall.EDQUOT), codes.ResourceExhausted},
		{fmt.Errorf("runc create: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("runc create x: injected"), codes.Unknown},
		{fmt.Errorf("open: %w", syscall.EACCES), codes.Unknown},
	} {
		got := toStatus(tc.err)
		if c := status.Code(got); c != tc.want {
			t.Errorf("toStatus(%v) = %v, want %v", tc.err, c, tc.want)
		}
		if s, _ := status.FromError(got); s.Message() != tc.err.Error() {
			t.Errorf("toStatus(%v) message %q, want the error's own", tc.err, s.Message())
		}
	}
}
