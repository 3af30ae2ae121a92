package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// trimStartupMemory gives back, once berthd is serving, the pages of its
// own binary touched so far. Package init across every dependency, config
// parsing, recovery and runtime probing fault in (with the kernel's 64 KiB
// fault-around) most of the 20 MiB of code and tables, and they stay
// mapped, counted in RSS and in the cgroup's memory, though most are never
// run again. MADV_PAGEOUT unmaps them and drops them from the page cache
// unless another process maps them; the code the CRI calls use faults back
// in on first use (a one-off read of a few MiB, spread over the first
// calls). Measured idle: 17.7 MiB of file-backed RSS before, 1.6 MiB after,
// 9-12 MiB after a round of CLI calls. It is advice: a failure (a kernel
// older than 5.4 has no MADV_PAGEOUT) is only logged.
func trimStartupMemory() (trimmed int, err error) {
	return unmapBinary(unix.MADV_PAGEOUT)
}

// trimQuietMemory is the trim after a burst of calls (internal/memtrim):
// the heap's free spans go back to the kernel at once rather than over
// minutes, and the binary's pages the burst mapped are unmapped again.
// MADV_DONTNEED, not PAGEOUT as at start: the pages stay in the page cache
// (clean, reclaimable, no longer held by berthd's mappings), so the next
// pod start refaults them without a disk read.
func trimQuietMemory(log *slog.Logger) {
	t0 := time.Now()
	debug.FreeOSMemory()
	n, err := unmapBinary(unix.MADV_DONTNEED)
	if err != nil {
		log.Debug("giving back memory after a burst of calls", "err", err)
		return
	}
	log.Debug("gave back memory after a burst of calls", "binaryBytes", n, "took", time.Since(t0))
}

// unmapBinary applies advice (MADV_PAGEOUT or MADV_DONTNEED) to the
// read-only mappings of berthd's binary that hold no private copy of a
// page. Both are safe while that code runs: its pages are never written,
// so a fault maps them back from the file. A read-only mapping with
// anonymous pages, in memory or swapped out (a PIE build's relocated
// .data.rel.ro, a debugger's breakpoint), is left alone: MADV_DONTNEED
// would drop those copies and the next fault would read the file's
// unrelocated bytes.
func unmapBinary(advice uintptr) (trimmed int, err error) {
	ranges, err := binaryMappings()
	if err != nil {
		return 0, err
	}
	for _, r := range ranges {
		// The raw call: these addresses are not Go memory, so no slice.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], advice); e != 0 {
			return trimmed, fmt.Errorf("madvise(%d): %w", advice, e)
		}
		trimmed += int(r[1] - r[0])
	}
	return trimmed, nil
}

// binaryMappings reads the ranges to trim once, at the first trim (the
// start-up one, before its MADV_PAGEOUT can swap a PIE's relocated pages
// out of sight): a read-only mapping without private copies cannot gain
// any later (nothing writes it; a debugger's breakpoint aside), and
// reading smaps at every trim would cost about a millisecond each time.
var binaryMappings = sync.OnceValues(func() ([][2]uintptr, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return binaryRanges(f, exe)
})

// binaryRanges returns, from a /proc/<pid>/smaps listing, the read-only
// mappings of exe (code and tables) without anonymous pages, resident or
// swapped. Writable
// ones (data, bss) hold state.
func binaryRanges(r io.Reader, exe string) ([][2]uintptr, error) {
	var out [][2]uintptr
	var cur *[2]uintptr // the mapping whose fields are being read, if a candidate
	flush := func() {
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		// Private copies in memory (Anonymous) or swapped out (Swap).
		v, anon := strings.CutPrefix(line, "Anonymous:")
		if !anon {
			v, anon = strings.CutPrefix(line, "Swap:")
		}
		if anon {
			if cur != nil && strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) != "0" {
				cur = nil // holds private copies: leave it
			}
			continue
		}
		fs := strings.Fields(line)
		lo, hi, isHeader := strings.Cut(fs0(fs), "-")
		if !isHeader || len(fs) < 5 || strings.HasSuffix(fs[0], ":") {
			continue // a field line of the current mapping
		}
		flush()
		if len(fs) < 6 || strings.Join(fs[5:], " ") != exe || strings.Contains(fs[1], "w") {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("/proc/self/smaps: bad range %q", fs[0])
		}
		cur = &[2]uintptr{uintptr(start), uintptr(end)}
	}
	flush()
	return out, sc.Err()
}

func fs0(fs []string) string {
	if len(fs) == 0 {
		return ""
	}
	return fs[0]
}
