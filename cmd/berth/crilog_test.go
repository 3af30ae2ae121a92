package main

import (
	"bytes"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	ts := "2024-05-01T10:20:30.123456789Z"
	want := time.Date(2024, 5, 1, 10, 20, 30, 123456789, time.UTC)
	tests := []struct {
		name    string
		line    string
		stream  string
		partial bool
		content string
		wantErr bool
	}{
		{name: "full stdout", line: ts + " stdout F hello world", stream: "stdout", content: "hello world"},
		{name: "partial stderr", line: ts + " stderr P part", stream: "stderr", partial: true, content: "part"},
		{name: "content keeps spaces", line: ts + " stdout F  two  spaces ", stream: "stdout", content: " two  spaces "},
		{name: "empty message", line: ts + " stdout F ", stream: "stdout", content: ""},
		{name: "empty message without space", line: ts + " stdout F", stream: "stdout", content: ""},
		{name: "extra tags", line: ts + " stdout P:x=1 abc", stream: "stdout", partial: true, content: "abc"},
		{name: "offset time", line: "2024-05-01T12:20:30.123456789+02:00 stdout F x", stream: "stdout", content: "x"},
		{name: "bad time", line: "yesterday stdout F x", wantErr: true},
		{name: "bad stream", line: ts + " stdin F x", wantErr: true},
		{name: "bad tag", line: ts + " stdout X x", wantErr: true},
		{name: "no tag", line: ts + " stdout", wantErr: true},
		{name: "empty", line: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := parseLogLine([]byte(tt.line))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseLogLine(%q) = %+v, want error", tt.line, e)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseLogLine(%q): %v", tt.line, err)
			}
			if !e.Time.Equal(want) || e.Stream != tt.stream || e.Partial != tt.partial || string(e.Content) != tt.content {
				t.Errorf("parseLogLine(%q) = %v %q %v %q, want %v %q %v %q", tt.line,
					e.Time, e.Stream, e.Partial, e.Content, want, tt.stream, tt.partial, tt.content)
			}
		})
	}
}

// logText renders CRI log lines, one per "stream tag content" triple.
func logText(lines ...string) string {
	var b bytes.Buffer
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for i, l := range lines {
		b.WriteString(base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano))
		b.WriteString(" ")
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

func TestJoinAndWrite(t *testing.T) {
	tests := []struct {
		name       string
		lines      []string
		timestamps bool
		stdout     string
		stderr     string
	}{
		{name: "whole lines", lines: []string{"stdout F a", "stderr F b", "stdout F c"}, stdout: "a\nc\n", stderr: "b\n"},
		{name: "partials join", lines: []string{"stdout P he", "stdout P ll", "stdout F o"}, stdout: "hello\n"},
		{name: "interleaved partials per stream", lines: []string{"stdout P a", "stderr P x", "stdout F b", "stderr F y"}, stdout: "ab\n", stderr: "xy\n"},
		{name: "unfinished partial flushed without newline", lines: []string{"stdout F a", "stdout P tail"}, stdout: "a\ntail"},
		{name: "empty line", lines: []string{"stdout F ", "stdout F x"}, stdout: "\nx\n"},
		{name: "timestamps of first piece", lines: []string{"stdout P a", "stdout F b"}, timestamps: true, stdout: "2024-05-01T10:00:00Z ab\n"},
		{name: "garbage skipped", lines: []string{"stdout F a", "nonsense", "stdout F b"}, stdout: "a\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			w := newLogWriter(&out, &errb, tt.timestamps)
			var j logJoiner
			for _, line := range bytes.Split(bytes.TrimSuffix([]byte(logText(tt.lines...)), []byte("\n")), []byte("\n")) {
				e, err := parseLogLine(line)
				if err != nil {
					continue
				}
				if m, ok := j.add(e); ok {
					if err := w.write(m); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, e := range j.flush() {
				if err := w.write(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.stdout || errb.String() != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", out.String(), errb.String(), tt.stdout, tt.stderr)
			}
		})
	}
}
