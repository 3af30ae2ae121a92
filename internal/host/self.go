package host

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BoundingCapabilities returns berthd's capability bounding set as a
// kernel mask: the most a container can be given.
func BoundingCapabilities() (uint64, error) { return selfCapMask("CapBnd") }

// HasEffectiveCap reports whether berthd has capability bit (unix.CAP_*)
// in its effective set. When it cannot tell it says no, which callers
// treat as the safe answer.
func HasEffectiveCap(bit int) (bool, error) {
	m, err := selfCapMask("CapEff")
	return err == nil && m&(1<<uint(bit)) != 0, err
}

func selfCapMask(key string) (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return ParseStatusMask(f, key)
}

// ParseStatusMask reads the hexadecimal mask of key ("CapEff", "CapBnd",
// ...) from /proc/<pid>/status text.
func ParseStatusMask(status io.Reader, key string) (uint64, error) {
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), key+":")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s %q in process status: %w", key, strings.TrimSpace(v), err)
		}
		return mask, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s line in process status", key)
}

// OOMScoreAdj is berthd's own oom_score_adj: without CAP_SYS_RESOURCE no
// container can get a lower one.
func OOMScoreAdj() (int, error) {
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

// SELinuxEnabled reports whether the host has SELinux on (selinuxfs
// mounted), as go-selinux decides it.
func SELinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && st.Type == unix.SELINUX_MAGIC
}

// MountSetattr reports whether the kernel has mount_setattr(2) (Linux >=
// 5.12), which recursive read-only mounts need. A bad fd gets EBADF from a
// kernel that has it and ENOSYS from one that does not.
func MountSetattr() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}
