package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestParseTarget(t *testing.T) {
	got, err := ParseTarget("name=containerd,endpoint=/run/c.sock,helpers=containerd-shim-runc-v2|pause,pid=42")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "containerd" || got.Endpoint != "unix:///run/c.sock" || got.PID != 42 || got.SocketPath() != "/run/c.sock" {
		t.Errorf("got %+v", got)
	}
	for name, want := range map[string]bool{"containerd-shim-runc-v2": true, "pause": true, "berth-pause": false, "conmon": false} {
		if got.Helpers.MatchString(name) != want {
			t.Errorf("helpers match %q = %v, want %v", name, !want, want)
		}
	}
	if got, err := ParseTarget("endpoint=unix:///run/berth/berth.sock"); err != nil || got.Name != "/run/berth/berth.sock" || got.Helpers != nil {
		t.Errorf("endpoint only: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "name=x", "endpoint=tcp://1.2.3.4:1", "endpoint=/s,pid=0", "endpoint=/s,helpers=(", "endpoint=/s,colour=blue", "endpoint"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
}

func TestListenerPIDAndProcName(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if pid, err := listenerPID(sock); err != nil || pid != os.Getpid() {
		t.Errorf("listenerPID(%s) = %d, %v; want this process, %d", sock, pid, err, os.Getpid())
	}
	if _, err := listenerPID(sock + ".none"); err == nil {
		t.Error("listenerPID of a socket nobody listens on succeeded")
	}
	if got, want := procName(os.Getpid()), filepath.Base(os.Args[0]); got != want {
		t.Errorf("procName(self) = %q, want %q", got, want)
	}
	m, err := readMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.PSS <= 0 || m.Threads < 1 {
		t.Errorf("readMemory(self) = %+v, %v", m, err)
	}
}
