package runtime

import "testing"

// FuzzRuntimeMessage: a runtime's log output (what conmon's create left, or
// a command's stderr) yields a bounded message without panics.
func FuzzRuntimeMessage(f *testing.F) {
	for _, s := range []string{
		`{"level":"error","msg":"container_linux.go:380: starting container process caused: exec: \"nope\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}`,
		`{"data": -1, "message": "runc create failed"}`, "plain text\nmore", ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, jsonOnly := range []bool{false, true} {
			if msg := rtMessage(b, jsonOnly); len(msg) > rtMaxMessage+3 {
				t.Fatalf("runtime message of %d bytes", len(msg))
			}
		}
	})
}
