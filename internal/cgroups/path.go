package cgroups

import (
	"fmt"
	"path"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// Cgroup drivers, as config's cgroup_driver and CRI's RuntimeConfig name them.
const (
	DriverCgroupfs = "cgroupfs"
	DriverSystemd  = "systemd"
)

// ScopePrefix names berth's systemd scopes: <prefix>-<id>.scope.
const ScopePrefix = "berth"

// ContainerPath is the OCI linux.cgroupsPath of container (or pause process)
// id in a pod whose cgroup parent is parent.
//
// cgroupfs: a path below the hierarchy root, "/kubepods/burstable/pod<uid>/<id>".
// A systemd slice parent (kubelet sends "kubepods-burstable-pod<uid>.slice"
// with the systemd driver) is expanded to the directories systemd would make,
// so both spellings land in the same place.
//
// systemd: runc's "slice:prefix:name" form, "kubepods-burstable-pod<uid>.slice:berth:<id>",
// which runc (--systemd-cgroup) turns into a transient berth-<id>.scope in
// that slice. A cgroupfs path parent is refused: systemd cannot place a unit
// at an arbitrary path.
func ContainerPath(driver, parent, id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/:") {
		return "", errdefs.Invalid(fmt.Sprintf("container id %q cannot name a cgroup", id))
	}
	switch driver {
	case DriverSystemd:
		slice := parent
		if slice == "" {
			slice = "-.slice" // systemd's root slice
		}
		if !strings.HasSuffix(slice, ".slice") || strings.Contains(slice, "/") {
			return "", errdefs.Invalid(fmt.Sprintf("cgroup parent %q is not a systemd slice name (like kubepods-burstable-pod<uid>.slice), which the systemd cgroup driver needs", parent))
		}
		if err := checkSliceName(slice); err != nil {
			return "", err
		}
		return slice + ":" + ScopePrefix + ":" + id, nil
	case DriverCgroupfs, "":
		if strings.HasSuffix(parent, ".slice") && !strings.Contains(parent, "/") {
			dir, err := ExpandSlice(parent)
			if err != nil {
				return "", err
			}
			return path.Join(dir, id), nil
		}
		if parent == "" {
			parent = "/"
		}
		if !path.IsAbs(parent) {
			return "", errdefs.Invalid(fmt.Sprintf("cgroup parent %q must be an absolute cgroupfs path", parent))
		}
		clean := path.Clean(parent)
		if clean != parent && clean+"/" != parent {
			return "", errdefs.Invalid(fmt.Sprintf("cgroup parent %q must be a clean path (no '..', '.' or '//')", parent))
		}
		return path.Join(clean, id), nil
	default:
		return "", fmt.Errorf("unknown cgroup driver %q (want cgroupfs or systemd)", driver)
	}
}

// ExpandSlice turns a systemd slice name into its cgroup directory, the way
// systemd nests slices by their dash-separated prefixes:
// "kubepods-burstable-pod1.slice" is
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice".
func ExpandSlice(slice string) (string, error) {
	if err := checkSliceName(slice); err != nil {
		return "", err
	}
	name := strings.TrimSuffix(slice, ".slice")
	if name == "-" {
		return "/", nil
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		b.WriteString("/" + prefix + part + ".slice")
		prefix += part + "-"
	}
	return b.String(), nil
}

// ExpandSystemdPath turns runc's systemd form "parent.slice:prefix:name"
// into the cgroupfs path systemd creates for it
// ("/a.slice/a-b.slice/prefix-name.scope"), and a bare slice name (a pod's
// cgroup parent under the systemd driver) into its path; cgroupfs paths,
// and slice names systemd would refuse, pass through unchanged.
func ExpandSystemdPath(p string) string {
	if !strings.Contains(p, "/") && !strings.Contains(p, ":") && strings.HasSuffix(p, ".slice") {
		if dir, err := ExpandSlice(p); err == nil {
			return dir
		}
		return p
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return p
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = "-.slice" // runc's default parent
	}
	dir, err := ExpandSlice(slice)
	if err != nil {
		return p
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		unit = prefix + "-" + name + ".scope"
	}
	return path.Join(dir, unit)
}

// checkSliceName applies systemd's rules for slice unit names: no empty
// component ("a--b", "-a", "a-"), no path separator.
func checkSliceName(slice string) error {
	name, ok := strings.CutSuffix(slice, ".slice")
	if !ok || name == "" {
		return errdefs.Invalid(fmt.Sprintf("%q is not a systemd slice name", slice))
	}
	if name == "-" {
		return nil
	}
	if strings.Contains(name, "/") || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
		return errdefs.Invalid(fmt.Sprintf("%q is not a valid systemd slice name (empty dash-separated part or '/')", slice))
	}
	return nil
}
