package main

import (
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBinaryRanges(t *testing.T) {
	smaps := `00400000-00dd5000 r-xp 00000000 fd:01 123 /usr/bin/berthd
Size:              10068 kB
Rss:                4096 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00dd5000-01933000 r--p 009d5000 fd:01 123 /usr/bin/berthd
Anonymous:             0 kB
01933000-01938000 r--p 01533000 fd:01 123 /usr/bin/berthd
Anonymous:            12 kB
Swap:                  0 kB
01938000-01940000 r--p 01538000 fd:01 123 /usr/bin/berthd
Anonymous:             0 kB
Swap:                  8 kB
01940000-019bb000 rw-p 01540000 fd:01 123 /usr/bin/berthd
Anonymous:           400 kB
019bb000-03a08000 rw-p 00000000 00:00 0
Anonymous:          8000 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 9 /usr/bin/berthd-other
Anonymous:             0 kB
7f0000002000-7f0000003000 r--s 00000000 fd:01 7 /var/lib/berth/berth.db
Anonymous:             0 kB
`
	got, err := binaryRanges(strings.NewReader(smaps), "/usr/bin/berthd")
	if err != nil {
		t.Fatal(err)
	}
	// Not the read-only mappings with private copies, resident or swapped
	// (a PIE's relocated .data.rel.ro), nor the writable ones or other files.
	want := [][2]uintptr{{0x400000, 0xdd5000}, {0xdd5000, 0x1933000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ranges %x, want %x", got, want)
	}
	if _, err := binaryRanges(strings.NewReader("zz-yy r-xp 0 0:0 1 /usr/bin/berthd\n"), "/usr/bin/berthd"); err == nil {
		t.Error("a bad range was accepted")
	}
}

func TestTrimStartupMemory(t *testing.T) {
	n, err := trimStartupMemory()
	if err != nil {
		t.Skipf("no MADV_PAGEOUT here: %v", err)
	}
	if n == 0 {
		t.Error("found no mapping of the test binary to trim")
	}
}

func TestUnmapBinaryDontNeed(t *testing.T) {
	// What the trim after a burst does: safe while this very code runs.
	n, err := unmapBinary(unix.MADV_DONTNEED)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("found no mapping of the test binary to trim")
	}
	trimQuietMemory(slog.New(slog.DiscardHandler))
}
