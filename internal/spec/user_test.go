package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostileRootfs is a rootfs with a good /usr/lib/passwd and whatever
// setup puts at /etc/passwd.
func hostileRootfs(t *testing.T, setup func(root, passwd string) error) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/lib", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/passwd"), []byte("app:x:1000:1001::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := setup(root, filepath.Join(root, "etc/passwd")); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("setup needs privileges: %v", err)
		}
		t.Fatal(err)
	}
	return root
}

// resolvePromptly resolves user in root and fails t if that takes more
// than a few seconds (a FIFO used to block it for ever).
func resolvePromptly(t *testing.T, ctx context.Context, root, user string) (uint32, uint32, error) {
	t.Helper()
	type result struct {
		uid, gid uint32
		err      error
	}
	ch := make(chan result, 1)
	go func() {
		uid, gid, err := resolveUser(ctx, root, user)
		ch <- result{uid, gid, err}
	}()
	select {
	case r := <-ch:
		return r.uid, r.gid, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("resolving user %q did not return within 5s", user)
		return 0, 0, nil
	}
}

func TestUserDBHostileFiles(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		setup   func(root, passwd string) error
		user    string
		wantErr string // empty: resolves to uid 1000 gid 1001
	}{
		{"fifo", func(_, p string) error { return unix.Mkfifo(p, 0o644) }, "app", "is a FIFO"},
		{"char device", func(root, p string) error {
			if err := unix.Mknod(filepath.Join(root, "dev/urandom"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 9))); err != nil {
				return err
			}
			return os.Symlink("/dev/urandom", p)
		}, "app", "is a character device"},
		{"directory", func(_, p string) error { return os.Mkdir(p, 0o755) }, "app", "is a directory"},
		{"huge file", func(_, p string) error {
			if err := os.WriteFile(p, []byte("app:x:1000:1001::/:/bin/sh\n"), 0o644); err != nil {
				return err
			}
			return os.Truncate(p, maxUserDBSize+1)
		}, "app", "larger than 4 MiB"},
		// The host's /dev/urandom through a link that climbs out: ".."
		// stops at the rootfs, where there is no such file.
		{"link to the host's urandom", func(_, p string) error {
			return os.Symlink("../../../../../../../../dev/urandom", p)
		}, "app", "not in the image's /etc/passwd"},
		{"absolute link to the host's urandom", func(_, p string) error {
			return os.Symlink("/dev/urandom", p)
		}, "app", "not in the image's /etc/passwd"},
		// Links inside the image resolve as the container sees them.
		{"absolute link inside the image", func(_, p string) error { return os.Symlink("/usr/lib/passwd", p) }, "app", ""},
		{"relative link inside the image", func(_, p string) error { return os.Symlink("../usr/lib/passwd", p) }, "app", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := hostileRootfs(t, tc.setup)
			uid, gid, err := resolvePromptly(t, ctx, root, tc.user)
			if tc.wantErr == "" {
				if err != nil || uid != 1000 || gid != 1001 {
					t.Fatalf("got %d:%d, %v; want 1000:1001", uid, gid, err)
				}
				return
			}
			wantInvalid(t, err, tc.wantErr)
			// Supplementary groups read /etc/group the same way.
			if tc.name == "fifo" {
				if err := os.Rename(filepath.Join(root, "etc/passwd"), filepath.Join(root, "etc/group")); err != nil {
					t.Fatal(err)
				}
				_, err := applyOpts(t, WithAdditionalGIDs(ctx, root, "app"))
				wantInvalid(t, err, "/etc/group is a FIFO")
			}
		})
	}
}

func TestUserDBCompatOpenRefusesSpecialFiles(t *testing.T) {
	root := hostileRootfs(t, func(_, p string) error { return unix.Mkfifo(p, 0o644) })
	done := make(chan error, 1)
	go func() {
		f, err := openRegularInRootCompat(root, "etc/passwd", "the image's /etc/passwd")
		if f != nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		wantInvalid(t, err, "is a FIFO")
	case <-time.After(5 * time.Second):
		t.Fatal("the os.Root fallback blocked on a FIFO")
	}
}

func TestUserDBObeysContext(t *testing.T) {
	root := testRootfs(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := resolvePromptly(t, ctx, root, "app")
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Fatalf("got %v, want context.Canceled while reading /etc/passwd", err)
	}
	// A bare uid looks up its primary group, so the deadline holds there too.
	if _, _, err := resolvePromptly(t, ctx, root, "1000"); !errors.Is(err, context.Canceled) {
		t.Fatalf("bare uid: got %v, want context.Canceled", err)
	}
	// uid:gid needs no file at all.
	if _, _, err := resolvePromptly(t, ctx, root, "1000:1000"); err != nil {
		t.Fatalf("uid:gid: %v", err)
	}
}
