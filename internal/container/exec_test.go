package container

import (
	"bytes"
	"sync"
	"testing"
)

func TestExecOutputSharedCap(t *testing.T) {
	for _, tc := range []struct {
		name           string
		limit          int
		stdout, stderr int // bytes each stream writes, in 1000-byte chunks
	}{
		{"both fit", 10000, 4000, 5000},
		{"stdout alone fills it", 10000, 20000, 0},
		{"together past it", 10000, 7000, 7000},
		{"both far past it", 10000, 50000, 50000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := &outputBudget{room: tc.limit}
			out, errb := &cappedBuffer{budget: budget}, &cappedBuffer{budget: budget}
			var wg sync.WaitGroup
			write := func(w *cappedBuffer, n int, b byte) {
				defer wg.Done()
				chunk := bytes.Repeat([]byte{b}, 1000)
				for range n / 1000 {
					if k, err := w.Write(chunk); k != len(chunk) || err != nil {
						t.Errorf("Write = %d, %v; want %d, nil (the process must never block)", k, err, len(chunk))
					}
				}
			}
			wg.Add(2)
			go write(out, tc.stdout, 'o')
			go write(errb, tc.stderr, 'e')
			wg.Wait()
			kept := out.buf.Len() + errb.buf.Len()
			want := min(tc.limit, tc.stdout+tc.stderr)
			if kept != want {
				t.Errorf("kept %d+%d = %d bytes, want %d", out.buf.Len(), errb.buf.Len(), kept, want)
			}
			if dropped := out.dropped + errb.dropped; int(dropped) != tc.stdout+tc.stderr-kept {
				t.Errorf("dropped %d, want %d", dropped, tc.stdout+tc.stderr-kept)
			}
			if bytes.ContainsRune(out.buf.Bytes(), 'e') || bytes.ContainsRune(errb.buf.Bytes(), 'o') {
				t.Error("streams mixed")
			}
		})
	}
}
