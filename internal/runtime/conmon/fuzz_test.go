package conmon

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzExitFile: whatever an exit file holds, ReadExit returns a code in
// int32 range (what CRI reports) or an error, never a truncated number.
func FuzzExitFile(f *testing.F) {
	for _, s := range []string{"0", "137\n", "-1", " 255 ", "2147483647", "2147483648", "-2147483649", "9999999999999999999", "", "x", "1e3", "+7", "0x10"} {
		f.Add([]byte(s))
	}
	exitDir := f.TempDir()
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(exitDir, "c1"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		ex, ok, err := ReadExit(exitDir, dir, "c1")
		if err != nil {
			return
		}
		if !ok {
			t.Fatal("exit file present but not reported")
		}
		if ex.Code < math.MinInt32 || ex.Code > math.MaxInt32 {
			t.Fatalf("exit code %d out of int32 range", ex.Code)
		}
		if c, err := parseExitCode([]byte(strconv.Itoa(ex.Code))); err != nil || c != ex.Code {
			t.Fatalf("code %d does not round-trip: %d %v", ex.Code, c, err)
		}
	})
}

// FuzzSyncMessage: conmon's sync message decodes without panics and
// yields one pid (the runtime's log message is fuzzed in package runtime).
func FuzzSyncMessage(f *testing.F) {
	for _, s := range []string{
		`{"data": 4242}`, `{"pid": 17}`, `{"data": -1, "message": "runc create failed: unable to start container process"}`,
		`{"data": 1, "pid": 2}`, `{"data": null}`, `{"data": 1e99}`, `{"data": "x"}`, `[]`, ``, `{`,
		`{"level":"error","msg":"container_linux.go:380: starting container process caused: exec: \"nope\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSync(bytes.NewReader(b))
		if err == nil {
			pid := m.pid()
			switch {
			case m.Data != nil && pid != *m.Data, m.Data == nil && m.Pid != nil && pid != *m.Pid, m.Data == nil && m.Pid == nil && pid != -1:
				t.Fatalf("pid %d from %+v", pid, m)
			}
		}
	})
}
