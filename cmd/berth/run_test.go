package main

import (
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "HOME" {
			return "/root", true
		}
		return "", false
	}
	kvs, err := parseEnv([]string{"A=1", "B=x=y", "C=", "HOME", "UNSET"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.GetKey()+"="+string(kv.GetValue()))
	}
	if want := "A=1 B=x=y C= HOME=/root"; strings.Join(got, " ") != want {
		t.Errorf("parseEnv = %q, want %q", strings.Join(got, " "), want)
	}
	if _, err := parseEnv([]string{"=v"}, lookup); err == nil {
		t.Error("parseEnv(=v): want error")
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		in            string
		uid, gid      int64 // -1: unset
		name, wantErr string
	}{
		{in: "1000", uid: 1000, gid: -1},
		{in: "0:0", uid: 0, gid: 0},
		{in: "nobody", uid: -1, gid: -1, name: "nobody"},
		{in: "nobody:65534", uid: -1, gid: 65534, name: "nobody"},
		{in: "nobody:nogroup", wantErr: "numeric gid"},
		{in: ":5", wantErr: "want uid"},
		{in: "-1", wantErr: "negative"},
	}
	for _, tt := range tests {
		sc, err := parseUser(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseUser(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("parseUser(%q): %v", tt.in, err)
		}
		uid, gid := int64(-1), int64(-1)
		if sc.GetRunAsUser() != nil {
			uid = sc.GetRunAsUser().GetValue()
		}
		if sc.GetRunAsGroup() != nil {
			gid = sc.GetRunAsGroup().GetValue()
		}
		if uid != tt.uid || gid != tt.gid || sc.GetRunAsUsername() != tt.name {
			t.Errorf("parseUser(%q) = uid %d gid %d name %q", tt.in, uid, gid, sc.GetRunAsUsername())
		}
	}
	if sc, err := parseUser(""); sc != nil || err != nil {
		t.Errorf("parseUser(\"\") = %v, %v", sc, err)
	}
}
