package framework

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// LogLine is one line of a CRI container log:
// "<RFC3339Nano time> <stream> <tag> <text>".
type LogLine struct {
	Time   time.Time
	Stream string // stdout or stderr
	Tag    string // F (full) or P (partial)
	Text   string
}

// ReadLog parses the CRI log at path; a line that does not parse fails t.
func ReadLog(t testing.TB, path string) []LogLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read container log: %v", err)
	}
	return ParseLog(t, data)
}

// ParseLog parses CRI log content.
func ParseLog(t testing.TB, data []byte) []LogLine {
	t.Helper()
	var out []LogLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) < 3 {
			t.Fatalf("log line %q: want <time> <stream> <tag> <text>", sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("log line %q: time: %v", sc.Text(), err)
		}
		l := LogLine{Time: ts, Stream: parts[1], Tag: parts[2]}
		if len(parts) == 4 {
			l.Text = parts[3]
		}
		if l.Stream != "stdout" && l.Stream != "stderr" {
			t.Fatalf("log line %q: stream %q", sc.Text(), l.Stream)
		}
		if l.Tag != "F" && l.Tag != "P" {
			t.Fatalf("log line %q: tag %q", sc.Text(), l.Tag)
		}
		out = append(out, l)
	}
	return out
}

// LogTexts returns the texts of the full lines of path, in order.
func LogTexts(t testing.TB, path string) []string {
	t.Helper()
	var out []string
	for _, l := range ReadLog(t, path) {
		out = append(out, l.Text)
	}
	return out
}

// WaitForLog polls the log at path until a line's text contains substr and
// returns all lines read; it fails t after timeout.
func WaitForLog(t testing.TB, path, substr string, timeout time.Duration) []LogLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if data, err := os.ReadFile(path); err == nil {
			lines := ParseLog(t, data)
			for _, l := range lines {
				if strings.Contains(l.Text, substr) {
					return lines
				}
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(path)
			t.Fatalf("log %s has no line containing %q after %v; content:\n%s", path, substr, timeout, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
