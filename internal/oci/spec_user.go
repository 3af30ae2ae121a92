package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// specUserString picks the user the way containerd does: run_as_username,
// else run_as_user (each with run_as_group as ":gid"), else the image USER.
func specUserString(sc *runtimeapi.LinuxContainerSecurityContext, imageUser string) (string, error) {
	var u, g string
	if sc.GetRunAsUser() != nil {
		u = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	}
	if sc.GetRunAsUsername() != "" {
		u = sc.GetRunAsUsername()
	}
	if sc.GetRunAsGroup() != nil {
		g = strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
	}
	if u == "" {
		if g != "" {
			return "", errdefs.Invalid("linux.security_context.run_as_group " + g + " is set without run_as_user or run_as_username")
		}
		return imageUser, nil
	}
	if g != "" {
		u += ":" + g
	}
	return u, nil
}

// specUserPart is the user half of a user string; "0" when there is none.
func specUserPart(userstr string) string {
	u, _, _ := strings.Cut(userstr, ":")
	if u == "" {
		return "0"
	}
	return u
}

// specParseID parses a numeric uid/gid; ok is false for names.
func specParseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// specOpenInRootfs opens name (relative to the rootfs) confined to the
// rootfs: symlinks in the image cannot make berth read host files.
func specOpenInRootfs(rootfs, name string) (*os.File, error) {
	if rootfs == "" {
		return nil, fs.ErrNotExist
	}
	return os.OpenInRoot(rootfs, name)
}

func specPasswd(rootfs string, filter func(user.User) bool) ([]user.User, error) {
	f, err := specOpenInRootfs(rootfs, "etc/passwd")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users, err := user.ParsePasswdFilter(f, filter)
	if err != nil {
		return nil, fmt.Errorf("read /etc/passwd of the image: %w", err)
	}
	return users, nil
}

func specGroups(rootfs string, filter func(user.Group) bool) ([]user.Group, error) {
	f, err := specOpenInRootfs(rootfs, "etc/group")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	groups, err := user.ParseGroupFilter(f, filter)
	if err != nil {
		return nil, fmt.Errorf("read /etc/group of the image: %w", err)
	}
	return groups, nil
}

// specLookupUserName resolves a user name in the image.
func specLookupUserName(rootfs, name string) (user.User, error) {
	users, err := specPasswd(rootfs, func(u user.User) bool { return u.Name == name })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return user.User{}, err
	}
	if len(users) == 0 {
		return user.User{}, errdefs.Invalid(fmt.Sprintf("user %q is not in the image's /etc/passwd", name))
	}
	return users[0], nil
}

// specLookupGroupName resolves a group name in the image.
func specLookupGroupName(rootfs, name string) (uint32, error) {
	groups, err := specGroups(rootfs, func(g user.Group) bool { return g.Name == name })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if len(groups) == 0 {
		return 0, errdefs.Invalid(fmt.Sprintf("group %q is not in the image's /etc/group", name))
	}
	return uint32(groups[0].Gid), nil
}

// WithUser sets uid and gid from a user string as the OCI image spec
// defines it: "uid", "name", "uid:gid", "name:group" and mixes. Names are
// resolved in the rootfs; a bare uid takes its primary gid from
// /etc/passwd when listed there, else 0. The primary gid is also put in
// additionalGids, as containerd does.
func WithUser(rootfs, userstr string) SpecOpt {
	return func(s *specs.Spec) error {
		specEnsureProcess(s)
		uid, gid, err := specResolveUser(rootfs, userstr)
		if err != nil {
			return err
		}
		s.Process.User = specs.User{UID: uid, GID: gid, AdditionalGids: []uint32{gid}}
		return nil
	}
}

func specResolveUser(rootfs, userstr string) (uid, gid uint32, err error) {
	if userstr == "" {
		return 0, 0, nil
	}
	parts := strings.Split(userstr, ":")
	switch len(parts) {
	case 1:
		if id, ok := specParseID(parts[0]); ok {
			users, err := specPasswd(rootfs, func(u user.User) bool { return u.Uid == int(id) })
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, 0, err
			}
			if len(users) == 0 {
				return id, 0, nil
			}
			return id, uint32(users[0].Gid), nil
		}
		u, err := specLookupUserName(rootfs, parts[0])
		if err != nil {
			return 0, 0, err
		}
		return uint32(u.Uid), uint32(u.Gid), nil
	case 2:
		if parts[0] == "" || parts[1] == "" {
			return 0, 0, errdefs.Invalid(fmt.Sprintf("user %q: user and group must both be set", userstr))
		}
		if id, ok := specParseID(parts[0]); ok {
			uid = id
		} else {
			u, err := specLookupUserName(rootfs, parts[0])
			if err != nil {
				return 0, 0, err
			}
			uid = uint32(u.Uid)
		}
		if id, ok := specParseID(parts[1]); ok {
			gid = id
		} else if gid, err = specLookupGroupName(rootfs, parts[1]); err != nil {
			return 0, 0, err
		}
		return uid, gid, nil
	default:
		return 0, 0, errdefs.Invalid(fmt.Sprintf("user %q: expected user, uid, user:group or uid:gid", userstr))
	}
}

// WithAdditionalGIDs adds the groups of the image's /etc/group that list
// the user as a member (supplemental_groups_policy Merge). A uid not in
// /etc/passwd has no name, so no memberships.
func WithAdditionalGIDs(rootfs, userPart string) SpecOpt {
	return func(s *specs.Spec) error {
		specEnsureProcess(s)
		name := userPart
		if id, ok := specParseID(userPart); ok {
			users, err := specPasswd(rootfs, func(u user.User) bool { return u.Uid == int(id) })
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if len(users) == 0 {
				return nil
			}
			name = users[0].Name
		}
		groups, err := specGroups(rootfs, func(g user.Group) bool {
			// Only supplementary memberships; a group named like the user
			// is its primary group (containerd's rule).
			return g.Name != name && slices.Contains(g.List, name)
		})
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		gids := make([]uint32, 0, len(groups))
		for _, g := range groups {
			gids = append(gids, uint32(g.Gid))
		}
		s.Process.User.AdditionalGids = specMergeGIDs(s.Process.User.AdditionalGids, gids)
		return nil
	}
}

// WithSupplementalGroups adds the security context's supplemental groups.
func WithSupplementalGroups(groups []int64) SpecOpt {
	return func(s *specs.Spec) error {
		specEnsureProcess(s)
		gids := make([]uint32, 0, len(groups))
		for _, g := range groups {
			if g < 0 || g > int64(^uint32(0)) {
				return errdefs.Invalid(fmt.Sprintf("linux.security_context.supplemental_groups: %d is not a valid gid", g))
			}
			gids = append(gids, uint32(g))
		}
		s.Process.User.AdditionalGids = specMergeGIDs(s.Process.User.AdditionalGids, gids)
		return nil
	}
}

// specMergeGIDs returns the sorted union of a and b.
func specMergeGIDs(a, b []uint32) []uint32 {
	out := append(append([]uint32(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
