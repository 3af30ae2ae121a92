package main

import (
	"bytes"
	"testing"
	"time"
)

// FuzzCRILog parses arbitrary log file content line by line as `berth
// logs` does: a parsed line formats back to a line that parses the same,
// and joining and writing the messages keeps every content byte.
func FuzzCRILog(f *testing.F) {
	f.Add([]byte("2024-01-02T03:04:05.123456789Z stdout F hello\n2024-01-02T03:04:05.2Z stderr P par\n2024-01-02T03:04:05.3Z stderr F tial\n"))
	f.Add([]byte("2024-01-02T03:04:05Z stdout F\n2024-01-02T03:04:05Z stdout P:x a\n"))
	f.Add([]byte("2024-01-02T03:04:05+02:00 stdout F  two spaces\nnot a log line\n\n"))
	f.Add([]byte("2024-01-02T03:04:05Z stdin F x\n2024-13-02T03:04:05Z stdout F x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var j logJoiner
		var out, errOut bytes.Buffer
		w := newLogWriter(&out, &errOut, false)
		var want [2]int // content bytes per stream
		for _, line := range bytes.Split(data, []byte("\n")) {
			e, err := parseLogLine(line)
			if err != nil {
				continue
			}
			tag := "F"
			if e.Partial {
				tag = "P"
			}
			again := []byte(e.Time.Format(time.RFC3339Nano) + " " + e.Stream + " " + tag + " ")
			again = append(again, e.Content...)
			e2, err := parseLogLine(again)
			if err != nil || e2.Stream != e.Stream || e2.Partial != e.Partial || !e2.Time.Equal(e.Time) || !bytes.Equal(e2.Content, e.Content) {
				t.Fatalf("line %q -> %+v formats to %q -> %+v, %v", line, e, again, e2, err)
			}
			if e.Stream == "stdout" {
				want[0] += len(e.Content)
			} else {
				want[1] += len(e.Content)
			}
			if m, ok := j.add(e); ok {
				if err := w.write(m); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, m := range j.flush() {
			if err := w.write(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		// Written: every content byte (lines were split on newlines, so
		// contents hold none) plus a newline per finished message.
		got := [2]int{len(bytes.ReplaceAll(out.Bytes(), []byte("\n"), nil)), len(bytes.ReplaceAll(errOut.Bytes(), []byte("\n"), nil))}
		if got != want {
			t.Fatalf("wrote %v content bytes per stream, parsed %v", got, want)
		}
	})
}
