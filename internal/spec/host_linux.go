package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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

// BoundingCapabilities returns the capabilities in berthd's own bounding
// set, the most a container can be given (HostConfig.AllCapabilities).
func BoundingCapabilities() ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapBnd in /proc/self/status: %w", err)
		}
		return CapsFromMask(mask), nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no CapBnd line in /proc/self/status")
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

// SELinuxEnabled reports whether the host has SELinux on (selinuxfs
// mounted), as go-selinux decides it.
func SELinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && st.Type == unix.SELINUX_MAGIC
}

// DaemonOOMScoreAdj is berthd's own oom_score_adj: without CAP_SYS_RESOURCE
// no container can get a lower one (HostConfig.OOMScoreAdjMin).
func DaemonOOMScoreAdj() (int, error) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse /proc/self/oom_score_adj: %w", err)
	}
	return v, nil
}
