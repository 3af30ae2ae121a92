package container

import (
	"context"
	"fmt"
	"io"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
)

// AttachOptions is one attach session's streams.
type AttachOptions struct {
	Stdin          io.Reader // nil: no input; ignored unless the container has stdin
	Stdout, Stderr io.Writer // nil: not wanted
	Resize         <-chan WinSize
}

// Attach joins a running container's stdio through its conmon: output from
// now on, input when the container was created with stdin, terminal resizes
// for a terminal container. It returns when the container's output ends,
// the client's input ends (the container keeps running; for stdin_once its
// stdin is closed), or ctx ends.
func (s *Service) Attach(ctx context.Context, id string, o AttachOptions) error {
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	if c.State != Running {
		return errdefs.Precondition(fmt.Sprintf("container %s is %s, not running; attach needs a running container", id, c.State))
	}
	cfg := c.Config
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return err
	}
	if !cfg.GetStdin() {
		o.Stdin = nil
	}
	if o.Resize != nil && cfg.GetTty() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ws, ok := <-o.Resize:
					if !ok {
						return
					}
					if err := rt.Resize(s.bundleDir(id), ws); err != nil {
						s.log.Debug("attach: terminal resize", "container", id, "err", err)
					}
				}
			}
		}()
	}
	s.log.Debug("attach", "container", id, "stdin", o.Stdin != nil, "tty", cfg.GetTty())
	return rt.Attach(ctx, s.bundleDir(id), runtime.AttachOptions{
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		StdinOnce: cfg.GetStdinOnce() && !cfg.GetTty(),
	})
}

// HasStdin says whether a container was created with stdin, so a request
// for its input can be refused up front.
func (s *Service) HasStdin(id string) (bool, error) {
	c, err := s.Get(id)
	if err != nil {
		return false, err
	}
	return c.Config.GetStdin(), nil
}
