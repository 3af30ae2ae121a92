package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxLogLine bounds a line without a newline; the writer (conmon) splits long
// output into partial lines far below this, so more means a corrupt file.
const maxLogLine = 4 << 20

// logFollower prints a CRI log file and, when following, keeps printing
// what is appended, across kubelet-style rotation (the file is renamed, then
// the writer reopens the path as a new file) and truncation.
type logFollower struct {
	path   string
	follow bool
	tail   int // last N messages of the existing content; < 0 for all
	out    *logWriter
	log    *slog.Logger

	// exited reports whether the writer is done (the container exited or
	// is gone). Following stops once it says so and the file is drained.
	// Nil means follow until ctx ends.
	exited func(context.Context) (bool, error)
	// poll is how often to look for rotation and exit without a file event.
	poll time.Duration
	// wake, when not nil, signals that exited may have changed (a
	// container event came), so it is asked at once, not at the next poll.
	wake <-chan struct{}
}

// lineReader yields complete lines from a file that may still be growing:
// a last line without its newline stays buffered until the rest arrives.
type lineReader struct {
	f     *os.File
	buf   []byte
	start int
	off   int64 // bytes read from f
}

var errNoLine = errors.New("no complete line yet")

func (r *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.buf[r.start:], '\n'); i >= 0 {
			line := r.buf[r.start : r.start+i]
			r.start += i + 1
			return line, nil
		}
		if len(r.buf)-r.start > maxLogLine {
			line := r.buf[r.start:]
			r.start = len(r.buf)
			return line, nil
		}
		// Compact, then read more.
		n := copy(r.buf, r.buf[r.start:])
		r.buf, r.start = r.buf[:n], 0
		if cap(r.buf)-n < 32<<10 {
			r.buf = append(make([]byte, 0, 2*cap(r.buf)+64<<10), r.buf...)
		}
		m, err := r.f.Read(r.buf[n:cap(r.buf)])
		r.buf = r.buf[:n+m]
		r.off += int64(m)
		if m == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, errNoLine
			}
			return nil, err
		}
	}
}

// rest returns buffered bytes of an unterminated last line and forgets them.
func (r *lineReader) rest() []byte {
	b := r.buf[r.start:]
	r.buf, r.start = r.buf[:0], 0
	return b
}

func (f *logFollower) run(ctx context.Context) error {
	if f.poll <= 0 {
		f.poll = 250 * time.Millisecond
	}
	file, err := f.open(ctx)
	if err != nil || file == nil {
		return err
	}
	defer func() { file.Close() }()
	r := &lineReader{f: file}

	var watch <-chan fsnotify.Event
	var watchErrs <-chan error
	if f.follow {
		// Watch the directory, not the file: rotation replaces the file.
		// Without a watcher the poll below still finds everything.
		if w, err := fsnotify.NewWatcher(); err == nil {
			defer w.Close()
			if err := w.Add(filepath.Dir(f.path)); err == nil {
				watch, watchErrs = w.Events, w.Errors
			}
		}
	}

	var j logJoiner
	var ring []logEntry // last f.tail messages while reading what is already there
	initial := f.tail >= 0
	emit := func(e logEntry) error {
		if !initial {
			return f.out.write(e)
		}
		if f.tail == 0 {
			return nil
		}
		if len(ring) == f.tail {
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, e)
		return nil
	}
	consume := func(line []byte) error {
		e, err := parseLogLine(line)
		if err != nil {
			f.log.Debug("skipping log line", "path", f.path, "error", err)
			return nil
		}
		if m, ok := j.add(e); ok {
			return emit(m)
		}
		return nil
	}

	drain := func() error {
		for {
			line, err := r.next()
			if errors.Is(err, errNoLine) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", f.path, err)
			}
			if err := consume(line); err != nil {
				return err
			}
		}
	}

	exitedSeen := false
	for {
		if err := drain(); err != nil {
			return err
		}
		if initial {
			initial = false
			for _, e := range ring {
				if err := f.out.write(e); err != nil {
					return err
				}
			}
			ring = nil
		}
		if err := f.out.flush(); err != nil {
			return err
		}
		if !f.follow {
			break
		}

		// Rotated: the path is now another file. The writer created it when
		// it reopened, so the old file is complete once drained again (lines
		// may have landed between the drain above and the reopen).
		if st, err := os.Stat(f.path); err == nil {
			cur, cerr := file.Stat()
			if cerr == nil && !os.SameFile(st, cur) {
				nf, err := os.Open(f.path)
				if err == nil {
					if err := drain(); err != nil {
						nf.Close()
						return err
					}
					if rest := r.rest(); len(rest) > 0 {
						if err := consume(rest); err != nil {
							return err
						}
					}
					file.Close()
					file = nf
					r = &lineReader{f: file}
					f.log.Debug("log rotated", "path", f.path)
					continue
				}
			} else if cerr == nil && st.Size() < r.off {
				// Truncated in place (copytruncate): start over.
				if _, err := file.Seek(0, io.SeekStart); err == nil {
					r = &lineReader{f: file}
					continue
				}
			}
		}

		if exitedSeen {
			break
		}
		if f.exited != nil {
			done, err := f.exited(ctx)
			if err != nil {
				return err
			}
			if done {
				// One more pass: the last lines may have landed after the
				// drain above.
				exitedSeen = true
				continue
			}
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-watch:
		case <-f.wake:
		case err := <-watchErrs:
			f.log.Debug("watching log directory", "path", f.path, "error", err)
		case <-time.After(f.poll):
		}
	}

	for _, e := range j.flush() {
		if err := f.out.write(e); err != nil {
			return err
		}
	}
	return f.out.flush()
}

// open opens the log file; when following, it waits for the file to appear
// (the writer may not have created it yet). It returns nil, nil when the
// writer exited without ever creating it.
func (f *logFollower) open(ctx context.Context) (*os.File, error) {
	for {
		file, err := os.Open(f.path)
		if err == nil {
			return file, nil
		}
		if !f.follow || !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading log: %w", err)
		}
		if f.exited != nil {
			done, err := f.exited(ctx)
			if err != nil {
				return nil, err
			}
			if done {
				if file, err := os.Open(f.path); err == nil {
					return file, nil
				}
				return nil, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.wake:
		case <-time.After(f.poll):
		}
	}
}
