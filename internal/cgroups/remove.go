// Package cgroups holds berth's cgroup helpers: paths under each hierarchy
// and removal. The OCI runtime creates and configures cgroups from the spec;
// berth only reads them and makes sure none is left behind.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/host"
)

// Dirs returns the directories of a cgroupfs-style path (like
// "/kubepods/besteffort/pod1/abc") in every mounted hierarchy: one per v1
// controller, the unified one on hybrid hosts, or the single v2 tree.
func Dirs(path string) []string {
	return dirsIn(host.CgroupRoot, path, host.CgroupV2())
}

// dirsIn is Dirs for the hierarchies mounted under root; v2 says root is
// itself the unified (cgroup v2) hierarchy.
func dirsIn(root, path string, v2 bool) []string {
	if path == "" || strings.Contains(path, ":") {
		return nil // systemd slice:prefix:name paths belong to systemd
	}
	if v2 {
		return []string{filepath.Join(root, path)}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(root, e.Name(), path))
		}
	}
	return dirs
}

// Remove deletes the cgroup at path in every hierarchy. The runtime's
// delete normally does this; a cgroup whose last task is still exiting
// refuses with EBUSY for a moment, so Remove retries briefly. A missing
// cgroup is fine.
func Remove(path string) error {
	var errs []error
	for _, dir := range Dirs(path) {
		var err error
		for try := 0; try < 50; try++ {
			err = unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
