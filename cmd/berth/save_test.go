package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-project/berth/internal/admin"
)

func (f *fakeCRI) SaveImages(_ context.Context, req admin.SaveRequest, w io.Writer) error {
	f.mu.Lock()
	f.saved = append(f.saved, req)
	fail := f.saveFail
	f.mu.Unlock()
	fmt.Fprintf(w, "archive of %s as %s\n", strings.Join(req.Images, ","), req.Format)
	return fail
}

func TestSave(t *testing.T) {
	f := sampleCRI()
	ep := startFake(t, f)
	dir := t.TempDir()
	file := filepath.Join(dir, "bb.tar")

	out, errOut, code := berth(t, ep, "save", "-o", file, "busybox")
	got, _ := os.ReadFile(file)
	if code != 0 || out != "" || errOut != "" || string(got) != "archive of busybox as docker\n" {
		t.Errorf("save -o: %d %q %q, file %q", code, out, errOut, got)
	}
	// An ID prefix goes out whole (berthd takes 12 digits at least); a tag as given.
	out, errOut, code = berth(t, ep, "save", "--format", "oci", "aaaa", "busybox:1.36")
	if code != 0 || out != "archive of sha256:aaaa0000000000000000,busybox:1.36 as oci\n" {
		t.Errorf("save to stdout: %d %q %q", code, out, errOut)
	}

	// A save cut short leaves no file, not even the one being written.
	f.saveFail = status.Error(codes.Unavailable, "disk gone")
	_, errOut, code = berth(t, ep, "save", "-o", filepath.Join(dir, "cut.tar"), "busybox")
	if code != 125 || !strings.HasPrefix(errOut, "berth: saving busybox to "+filepath.Join(dir, "cut.tar")+": ") || !strings.Contains(errOut, "disk gone") {
		t.Errorf("failed save: %d %q", code, errOut)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"bb.tar"}) {
		t.Errorf("after a failed save the dir holds %v, want only bb.tar", names)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"save", "--format", "zip", "busybox"}, `berth: save: --format "zip": use docker or oci` + "\n"},
		{[]string{"save", "-o", file, "nosuch"}, `berth: no image matches "nosuch"` + "\n"},
	} {
		_, errOut, code := berth(t, ep, tc.args...)
		if code != 125 || errOut != tc.want {
			t.Errorf("%v: %d %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
	if len(f.saved) != 3 {
		t.Errorf("berthd was asked %d times, want 3: %v", len(f.saved), f.saved)
	}
}
