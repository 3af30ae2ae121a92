package main

import (
	"testing"
	"time"
)

func TestHumanSize(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0B"},
		{999, "999B"},
		{1000, "1kB"},
		{1234, "1.23kB"},
		{999499, "999kB"},
		{999999, "1MB"},
		{4_260_000, "4.26MB"},
		{1_500_000_000, "1.5GB"},
		{2_000_000_000_000, "2TB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.in); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "Less than a second"},
		{500 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{45 * time.Second, "45 seconds"},
		{90 * time.Second, "About a minute"},
		{5 * time.Minute, "5 minutes"},
		{59 * time.Minute, "59 minutes"},
		{61 * time.Minute, "About an hour"},
		{3 * time.Hour, "3 hours"},
		{47 * time.Hour, "47 hours"},
		{72 * time.Hour, "3 days"},
		{15 * 24 * time.Hour, "2 weeks"},
		{90 * 24 * time.Hour, "3 months"},
		{800 * 24 * time.Hour, "2 years"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.in); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	now := time.Now()
	if got := ago(now.Add(-5*time.Minute).UnixNano(), now); got != "5 minutes ago" {
		t.Errorf("ago = %q", got)
	}
	if got := ago(0, now); got != "Unknown" {
		t.Errorf("ago(0) = %q", got)
	}
}

func TestShortID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0123456789abcdef0123", "0123456789abc"},
		{"sha256:0123456789abcdef0123", "0123456789abc"},
		{"abc", "abc"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := shortID(tt.in); got != tt.want {
			t.Errorf("shortID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeRef(t *testing.T) {
	tests := []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"alice/app", "docker.io/alice/app:latest"},
		{"quay.io/x/y:2", "quay.io/x/y:2"},
		{"localhost/app", "localhost/app:latest"},
		{"localhost:5000/app", "localhost:5000/app:latest"},
		{"registry:5000/app:v1", "registry:5000/app:v1"},
		{"busybox@sha256:abcd", "docker.io/library/busybox@sha256:abcd"},
	}
	for _, tt := range tests {
		if got := normalizeRef(tt.in); got != tt.want {
			t.Errorf("normalizeRef(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitRepoTag(t *testing.T) {
	tests := []struct{ in, repo, tag string }{
		{"docker.io/library/busybox:latest", "docker.io/library/busybox", "latest"},
		{"localhost:5000/app", "localhost:5000/app", "<none>"},
		{"localhost:5000/app:v1", "localhost:5000/app", "v1"},
		{"<none>", "<none>", "<none>"},
	}
	for _, tt := range tests {
		if repo, tag := splitRepoTag(tt.in); repo != tt.repo || tag != tt.tag {
			t.Errorf("splitRepoTag(%q) = %q %q, want %q %q", tt.in, repo, tag, tt.repo, tt.tag)
		}
	}
}
