package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// OSHost is the real host behind HostFS.
type OSHost struct{}

// Stat reports whether path exists (following symlinks, as the bind mount will).
func (OSHost) Stat(path string) error {
	_, err := os.Stat(path)
	return err
}

// ReadFile reads a file on the host.
func (OSHost) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// Devices returns the device node at path, or every device node under path
// when it is a directory (skipping pseudo-terminal, shm and fd trees, which
// are per-container).
func (OSHost) Devices(path string) ([]specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		d, ok := deviceFromStat(path, &st)
		if !ok {
			return nil, fmt.Errorf("%s is not a device node", path)
		}
		return []specs.LinuxDevice{d}, nil
	}
	var out []specs.LinuxDevice
	err := filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			// Devices come and go (hotplug); an entry vanishing mid-walk is not an error.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				if p != path {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if e.Name() == "console" || e.Type()&fs.ModeDevice == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		if d, ok := deviceFromStat(p, &st); ok {
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

func deviceFromStat(path string, st *unix.Stat_t) (specs.LinuxDevice, bool) {
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, false
	}
	mode := fs.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	rdev := uint64(st.Rdev) //nolint:unconvert // Rdev's type differs between architectures
	return specs.LinuxDevice{
		Path:     path,
		Type:     typ,
		Major:    int64(unix.Major(rdev)),
		Minor:    int64(unix.Minor(rdev)),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, true
}

// CapsFromMask names the capabilities set in a kernel capability mask;
// bits Linux has no name for here are skipped.
func CapsFromMask(mask uint64) []string {
	var caps []string
	for i, name := range capNames {
		if mask&(1<<uint(i)) != 0 {
			caps = append(caps, name)
		}
	}
	return caps
}
