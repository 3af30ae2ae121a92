package main

import (
	"errors"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResolveID(t *testing.T) {
	cands := []candidate{
		{ID: "abc123", Name: "web"},
		{ID: "abd456", Name: "db"},
		{ID: "ffe789", Name: "abc"},   // a name that is also an ID prefix
		{ID: "0a1", Name: "dup"},      //
		{ID: "0b2", Name: "dup"},      // two objects with one name
		{ID: "0a1", Name: "ns/other"}, // second spelling of 0a1
	}
	tests := []struct {
		arg     string
		want    string
		wantErr string
	}{
		{arg: "abc123", want: "abc123"},
		{arg: "web", want: "abc123"},
		{arg: "abc", want: "ffe789"}, // names win over prefixes
		{arg: "abd", want: "abd456"},
		{arg: "ff", want: "ffe789"},
		{arg: "0a", want: "0a1"}, // one object despite two names
		{arg: "ns/other", want: "0a1"},
		{arg: "ab", wantErr: `ID prefix "ab" matches 2 containers: abc123 (web), abd456 (db)`},
		{arg: "dup", wantErr: `name "dup" matches 2 containers: 0a1 (dup), 0b2 (dup)`},
		{arg: "zzz", wantErr: `no container matches "zzz"`},
		{arg: "", wantErr: "empty container ID"},
	}
	for _, tt := range tests {
		got, err := resolveID("container", tt.arg, cands)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("resolveID(%q) = %q, %v; want error containing %q", tt.arg, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolveID(%q) = %q, %v; want %q", tt.arg, got, err, tt.want)
		}
	}
	var nm *noMatchError
	if _, err := resolveID("pod", "q", nil); !errors.As(err, &nm) {
		t.Errorf("no match error is %T, want *noMatchError", err)
	}
}

func TestMatchImage(t *testing.T) {
	imgs := []*runtimeapi.Image{
		{Id: "sha256:aaaa1111", RepoTags: []string{"docker.io/library/busybox:latest"}, RepoDigests: []string{"docker.io/library/busybox@sha256:d1"}},
		{Id: "sha256:aaab2222", RepoTags: []string{"quay.io/x/y:2"}},
		{Id: "sha256:cccc3333"},
	}
	tests := []struct {
		arg, want, wantErr string
	}{
		{arg: "busybox", want: "sha256:aaaa1111"},
		{arg: "busybox:latest", want: "sha256:aaaa1111"},
		{arg: "docker.io/library/busybox@sha256:d1", want: "sha256:aaaa1111"},
		{arg: "quay.io/x/y:2", want: "sha256:aaab2222"},
		{arg: "sha256:cccc3333", want: "sha256:cccc3333"},
		{arg: "cccc3333", want: "sha256:cccc3333"},
		{arg: "cc", want: "sha256:cccc3333"},
		{arg: "aaab", want: "sha256:aaab2222"},
		{arg: "aaa", wantErr: "matches 2 images"},
		{arg: "nginx", want: ""},
		{arg: "dd", want: ""},
	}
	for _, tt := range tests {
		got, err := matchImage(tt.arg, imgs)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("matchImage(%q) = %q, %v; want error %q", tt.arg, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("matchImage(%q) = %q, %v; want %q", tt.arg, got, err, tt.want)
		}
	}
}
