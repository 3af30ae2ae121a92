package conmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Exit is how a container ended, as conmon recorded it.
type Exit struct {
	Code int       // exit status; 128+n when killed by signal n; -1 when conmon's timeout killed it
	At   time.Time // when conmon wrote the exit file
	OOM  bool      // the container's memory cgroup saw an OOM kill
}

// ReadExit reads the exit conmon recorded for container id: the file in the
// shared exitDir, or else the persist copy in the container's dir. ok is
// false when the container has not exited (or conmon died without writing).
func ReadExit(exitDir, dir, id string) (Exit, bool, error) {
	paths := []string{filepath.Join(exitDir, id), filepath.Join(dir, persistExitFile)}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Exit{}, false, fmt.Errorf("monitor: reading exit of container %s: %w", id, err)
		}
		code, err := parseExitCode(b)
		if err != nil {
			return Exit{}, false, fmt.Errorf("monitor: exit file %s of container %s: %w", p, id, err)
		}
		ex := Exit{Code: code}
		if fi, err := os.Stat(p); err == nil {
			ex.At = fi.ModTime()
		}
		if _, err := os.Stat(filepath.Join(dir, oomFile)); err == nil {
			ex.OOM = true
		}
		return ex, true, nil
	}
	return Exit{}, false, nil
}

// parseExitCode reads conmon's exit file: a decimal exit status. Codes
// outside int32 (what CRI reports) are refused rather than truncated.
func parseExitCode(b []byte) (int, error) {
	const max = 64
	if len(b) > max {
		return 0, fmt.Errorf("holds %d bytes, not an exit code", len(b))
	}
	code, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("holds %q, not an exit code", b)
	}
	return int(code), nil
}

// RemoveExit deletes the shared exit file of container id once its exit is
// recorded elsewhere; the persist copy goes with the container's dir.
func RemoveExit(exitDir, id string) error {
	if err := os.Remove(filepath.Join(exitDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("monitor: removing exit file of container %s: %w", id, err)
	}
	return nil
}

// Watch calls fn with the container id of each exit file in exitDir: first
// those already there (exits while berthd was down, or between a restart's
// scan and this watch), then each new one as conmon writes it. fn may see an
// id more than once and must be idempotent. Watch returns nil when ctx ends.
func Watch(ctx context.Context, exitDir string, fn func(id string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("monitor: watching exits: %w", err)
	}
	defer w.Close()
	if err := os.MkdirAll(exitDir, 0o700); err != nil {
		return fmt.Errorf("monitor: watching exits: %w", err)
	}
	if err := w.Add(exitDir); err != nil {
		return fmt.Errorf("monitor: watching exits in %s: %w", exitDir, err)
	}
	// Scan after the watch is in place so no exit falls between the two.
	entries, err := os.ReadDir(exitDir)
	if err != nil {
		return fmt.Errorf("monitor: listing exits in %s: %w", exitDir, err)
	}
	for _, e := range entries {
		if isExitName(e.Name()) && e.Type().IsRegular() {
			fn(e.Name())
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// conmon writes "<id>.XXXXXX" and renames it to "<id>": the
			// rename arrives as Create of the final name.
			if ev.Has(fsnotify.Create) {
				if name := filepath.Base(ev.Name); isExitName(name) {
					fn(name)
				}
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: rescan so no exit is missed.
			slog.Warn("exit watch error; rescanning", "dir", exitDir, "err", err)
			if entries, err := os.ReadDir(exitDir); err == nil {
				for _, e := range entries {
					if isExitName(e.Name()) && e.Type().IsRegular() {
						fn(e.Name())
					}
				}
			}
		}
	}
}

// isExitName tells a final exit file from conmon's temporary ones (which
// carry a ".XXXXXX" suffix); container ids never contain a dot.
func isExitName(name string) bool {
	return name != "" && !strings.Contains(name, ".")
}
