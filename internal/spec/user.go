package spec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// User is the identity a CRI config asks for: run_as_username, else
// run_as_user, each with run_as_group. The zero User means the image's USER.
type User struct {
	Name string  // run_as_username
	UID  *uint32 // run_as_user
	GID  *uint32 // run_as_group
}

// parseUser checks and reads the user fields of a security context.
func parseUser(sc *runtimeapi.LinuxContainerSecurityContext) (User, error) {
	const field = "linux.security_context"
	var u User
	if g := sc.GetRunAsGroup(); g != nil {
		if sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
			return User{}, errdefs.Invalid(field + ".run_as_group " + strconv.FormatInt(g.GetValue(), 10) + " is set without run_as_user or run_as_username")
		}
	}
	if r := sc.GetRunAsUser(); r != nil {
		if r.GetValue() < 0 || r.GetValue() > int64(^uint32(0)) {
			return User{}, errdefs.Invalid(fmt.Sprintf("%s.run_as_user %d is not a valid uid", field, r.GetValue()))
		}
		uid := uint32(r.GetValue())
		u.UID = &uid
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if g.GetValue() < 0 || g.GetValue() > int64(^uint32(0)) {
			return User{}, errdefs.Invalid(fmt.Sprintf("%s.run_as_group %d is not a valid gid", field, g.GetValue()))
		}
		gid := uint32(g.GetValue())
		u.GID = &gid
	}
	if strings.ContainsAny(sc.GetRunAsUsername(), ":\x00") {
		return User{}, errdefs.Invalid(fmt.Sprintf("%s.run_as_username %q must not contain ':'", field, sc.GetRunAsUsername()))
	}
	u.Name = sc.GetRunAsUsername()
	return u, nil
}

// userString picks the user the way containerd does: the config's user
// (by name, else by uid, with ":gid" when a group is given), else the image
// USER, in the image spec's "user[:group]" form.
func (u User) userString(imageUser string) string {
	var s string
	switch {
	case u.Name != "":
		s = u.Name
	case u.UID != nil:
		s = strconv.FormatUint(uint64(*u.UID), 10)
	default:
		return imageUser
	}
	if u.GID != nil {
		s += ":" + strconv.FormatUint(uint64(*u.GID), 10)
	}
	return s
}

// userPart is the user half of a user string; "0" when there is none.
func userPart(userstr string) string {
	u, _, _ := strings.Cut(userstr, ":")
	if u == "" {
		return "0"
	}
	return u
}

// parseID parses a numeric uid/gid; ok is false for names.
func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// maxUserDBSize bounds what berth reads of an image's /etc/passwd or
// /etc/group. Real ones are a few KiB; a big one only costs berthd memory.
const maxUserDBSize = 4 << 20

// readInRootfs reads the image file name (relative to the rootfs) for
// user resolution. The image is hostile input, so:
//   - the path is resolved as if the rootfs were "/" (RESOLVE_IN_ROOT):
//     symlinks and ".." cannot leave it, no magic links, no other mounts;
//   - the file is first opened O_PATH and must be a regular file: opening
//     a FIFO for reading blocks until a writer comes, and opening a device
//     runs its driver (/dev/urandom never ends);
//   - it is reopened non-blocking and read up to maxUserDBSize bytes,
//     checking ctx between chunks so the request's deadline holds.
func readInRootfs(ctx context.Context, rootfs, name string) ([]byte, error) {
	if rootfs == "" {
		return nil, fs.ErrNotExist
	}
	what := "the image's /" + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	f, err := openRegularInRoot(rootfs, name, what)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxUserDBSize {
		return nil, tooBig(what)
	}
	var buf bytes.Buffer
	chunk := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
		n, err := f.Read(chunk)
		buf.Write(chunk[:n])
		if buf.Len() > maxUserDBSize {
			return nil, tooBig(what) // it grew while read
		}
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
	}
}

func tooBig(what string) error {
	return errdefs.Invalid(fmt.Sprintf("%s is larger than %d MiB; berth does not read it to resolve users", what, maxUserDBSize>>20))
}

// openRegularInRoot opens rootfs/name for reading, confined to rootfs,
// only if it is a regular file (see readInRootfs).
func openRegularInRoot(rootfs, name, what string) (*os.File, error) {
	dir, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOSYS) {
		// No openat2 (Linux < 5.6, or a seccomp filter around berthd):
		// os.Root still confines the path, without the O_PATH step.
		return openRegularInRootCompat(rootfs, name, what)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: what, Err: err}
	}
	defer unix.Close(fd)
	if err := checkRegular(fd, what); err != nil {
		return nil, err
	}
	// Reopening the O_PATH fd through /proc opens that very inode.
	rfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: what, Err: err}
	}
	return os.NewFile(uintptr(rfd), what), nil
}

func openRegularInRootCompat(rootfs, name, what string) (*os.File, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(what, fi.Mode())
	}
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(int(f.Fd()), what); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkRegular(fd int, what string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: what, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return notRegular(what, fileType(st.Mode))
	}
	return nil
}

// fileType maps a stat mode's file type to fs.FileMode bits, for
// messages.
func fileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

func notRegular(what string, mode fs.FileMode) error {
	kind := "special file"
	switch {
	case mode&fs.ModeNamedPipe != 0:
		kind = "FIFO"
	case mode&fs.ModeCharDevice != 0:
		kind = "character device"
	case mode&fs.ModeDevice != 0:
		kind = "block device"
	case mode&fs.ModeSocket != 0:
		kind = "socket"
	case mode.IsDir():
		kind = "directory"
	}
	return errdefs.Invalid(fmt.Sprintf("%s is a %s, not a regular file; berth does not read it to resolve users", what, kind))
}

func readPasswd(ctx context.Context, rootfs string, filter func(user.User) bool) ([]user.User, error) {
	data, err := readInRootfs(ctx, rootfs, "etc/passwd")
	if err != nil {
		return nil, err
	}
	users, err := user.ParsePasswdFilter(bytes.NewReader(data), filter)
	if err != nil {
		return nil, fmt.Errorf("read /etc/passwd of the image: %w", err)
	}
	return users, nil
}

func readGroups(ctx context.Context, rootfs string, filter func(user.Group) bool) ([]user.Group, error) {
	data, err := readInRootfs(ctx, rootfs, "etc/group")
	if err != nil {
		return nil, err
	}
	groups, err := user.ParseGroupFilter(bytes.NewReader(data), filter)
	if err != nil {
		return nil, fmt.Errorf("read /etc/group of the image: %w", err)
	}
	return groups, nil
}

// lookupUserName resolves a user name in the image.
func lookupUserName(ctx context.Context, rootfs, name string) (user.User, error) {
	users, err := readPasswd(ctx, rootfs, func(u user.User) bool { return u.Name == name })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return user.User{}, err
	}
	if len(users) == 0 {
		return user.User{}, errdefs.Invalid(fmt.Sprintf("user %q is not in the image's /etc/passwd", name))
	}
	return users[0], nil
}

// lookupGroupName resolves a group name in the image.
func lookupGroupName(ctx context.Context, rootfs, name string) (uint32, error) {
	groups, err := readGroups(ctx, rootfs, func(g user.Group) bool { return g.Name == name })
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
func WithUser(ctx context.Context, rootfs, userstr string) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		uid, gid, err := resolveUser(ctx, rootfs, userstr)
		if err != nil {
			return err
		}
		s.Process.User = specs.User{UID: uid, GID: gid, AdditionalGids: []uint32{gid}}
		return nil
	}
}

func resolveUser(ctx context.Context, rootfs, userstr string) (uid, gid uint32, err error) {
	if userstr == "" {
		return 0, 0, nil
	}
	parts := strings.Split(userstr, ":")
	switch len(parts) {
	case 1:
		if id, ok := parseID(parts[0]); ok {
			users, err := readPasswd(ctx, rootfs, func(u user.User) bool { return u.Uid == int(id) })
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, 0, err
			}
			if len(users) == 0 {
				return id, 0, nil
			}
			return id, uint32(users[0].Gid), nil
		}
		u, err := lookupUserName(ctx, rootfs, parts[0])
		if err != nil {
			return 0, 0, err
		}
		return uint32(u.Uid), uint32(u.Gid), nil
	case 2:
		if parts[0] == "" || parts[1] == "" {
			return 0, 0, errdefs.Invalid(fmt.Sprintf("user %q: user and group must both be set", userstr))
		}
		if id, ok := parseID(parts[0]); ok {
			uid = id
		} else {
			u, err := lookupUserName(ctx, rootfs, parts[0])
			if err != nil {
				return 0, 0, err
			}
			uid = uint32(u.Uid)
		}
		if id, ok := parseID(parts[1]); ok {
			gid = id
		} else if gid, err = lookupGroupName(ctx, rootfs, parts[1]); err != nil {
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
func WithAdditionalGIDs(ctx context.Context, rootfs, userPart string) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		name := userPart
		if id, ok := parseID(userPart); ok {
			users, err := readPasswd(ctx, rootfs, func(u user.User) bool { return u.Uid == int(id) })
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if len(users) == 0 {
				return nil
			}
			name = users[0].Name
		}
		groups, err := readGroups(ctx, rootfs, func(g user.Group) bool {
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
		s.Process.User.AdditionalGids = mergeGIDs(s.Process.User.AdditionalGids, gids)
		return nil
	}
}

// WithSupplementalGroups adds the security context's supplemental groups
// (checked by ValidateContainer).
func WithSupplementalGroups(gids []uint32) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		s.Process.User.AdditionalGids = mergeGIDs(s.Process.User.AdditionalGids, gids)
		return nil
	}
}

// supplementalGroups checks the security context's supplemental groups.
func supplementalGroups(groups []int64) ([]uint32, error) {
	gids := make([]uint32, 0, len(groups))
	for _, g := range groups {
		if g < 0 || g > int64(^uint32(0)) {
			return nil, errdefs.Invalid(fmt.Sprintf("linux.security_context.supplemental_groups: %d is not a valid gid", g))
		}
		gids = append(gids, uint32(g))
	}
	return gids, nil
}

// mergeGIDs returns the sorted union of a and b.
func mergeGIDs(a, b []uint32) []uint32 {
	out := append(append([]uint32(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
