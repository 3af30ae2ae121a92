package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// logEntry is one line of a CRI container log file:
//
//	<RFC3339Nano time> <stdout|stderr> <F|P>[:more tags] <content>
//
// P (partial) lines continue in the next line of the same stream; F ends a
// message.
type logEntry struct {
	Time    time.Time
	Stream  string // "stdout" or "stderr"
	Partial bool
	Content []byte
}

var errLogLine = errors.New("not a CRI log line")

// parseLogLine parses one line without its trailing newline. Content is a
// copy, safe to keep.
func parseLogLine(line []byte) (logEntry, error) {
	var e logEntry
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return e, fmt.Errorf("%w: no timestamp", errLogLine)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, fmt.Errorf("%w: timestamp %q", errLogLine, ts)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return e, fmt.Errorf("%w: no tag", errLogLine)
	}
	switch s := string(stream); s {
	case "stdout", "stderr":
		e.Stream = s
	default:
		return e, fmt.Errorf("%w: stream %q", errLogLine, stream)
	}
	// An empty message may be written without the separating space.
	tags, content, _ := bytes.Cut(rest, []byte{' '})
	tag, _, _ := bytes.Cut(tags, []byte{':'})
	switch string(tag) {
	case "F":
	case "P":
		e.Partial = true
	default:
		return e, fmt.Errorf("%w: tag %q", errLogLine, tags)
	}
	e.Time = t
	e.Content = bytes.Clone(content)
	return e, nil
}

// logJoiner joins partial lines into whole messages, per stream, since the
// two streams' pieces may interleave.
type logJoiner struct {
	pending map[string]*logEntry
}

// add takes the next entry and returns a completed message, if any. The
// message carries the time of its first piece.
func (j *logJoiner) add(e logEntry) (logEntry, bool) {
	p := j.pending[e.Stream]
	if p != nil {
		p.Content = append(p.Content, e.Content...)
	}
	if e.Partial {
		if p == nil {
			if j.pending == nil {
				j.pending = map[string]*logEntry{}
			}
			c := e
			j.pending[e.Stream] = &c
		}
		return logEntry{}, false
	}
	if p == nil {
		return e, true
	}
	delete(j.pending, e.Stream)
	p.Partial = false
	return *p, true
}

// flush returns unfinished messages (still marked Partial), oldest first.
func (j *logJoiner) flush() []logEntry {
	var out []logEntry
	for _, s := range []string{"stdout", "stderr"} {
		if p := j.pending[s]; p != nil {
			out = append(out, *p)
		}
	}
	if len(out) == 2 && out[1].Time.Before(out[0].Time) {
		out[0], out[1] = out[1], out[0]
	}
	j.pending = nil
	return out
}

// logWriter writes messages to the terminal: stdout messages to stdout,
// stderr to stderr. Output is buffered; a switch of stream flushes the other
// one so the two keep their order on a shared terminal.
type logWriter struct {
	timestamps bool
	out, err   *bufio.Writer
	last       *bufio.Writer
}

func newLogWriter(stdout, stderr io.Writer, timestamps bool) *logWriter {
	return &logWriter{timestamps: timestamps, out: bufio.NewWriter(stdout), err: bufio.NewWriter(stderr)}
}

// write prints e, ending it with a newline unless it is an unfinished
// partial message.
func (w *logWriter) write(e logEntry) error {
	b := w.out
	if e.Stream == "stderr" {
		b = w.err
	}
	if w.last != nil && w.last != b {
		if err := w.last.Flush(); err != nil {
			return err
		}
	}
	w.last = b
	if w.timestamps {
		b.WriteString(e.Time.Format(time.RFC3339Nano))
		b.WriteByte(' ')
	}
	b.Write(e.Content)
	if !e.Partial {
		b.WriteByte('\n')
	}
	return nil
}

func (w *logWriter) flush() error {
	return errors.Join(w.out.Flush(), w.err.Flush())
}
