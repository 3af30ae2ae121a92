package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParsePublish(t *testing.T) {
	tests := map[string]string{
		"8080:80":            `hostPort:8080 containerPort:80`,
		"53:53/udp":          `protocol:UDP hostPort:53 containerPort:53`,
		"127.0.0.1:8443:443": `hostIp:"127.0.0.1" hostPort:8443 containerPort:443`,
		"[::1]:8080:80/tcp":  `hostIp:"::1" hostPort:8080 containerPort:80`,
		"9000":               `hostPort:9000 containerPort:9000`,
	}
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for in, want := range tests {
		got, err := parsePublish([]string{in})
		if err != nil || len(got) != 1 {
			t.Errorf("-p %s: %v %v", in, got, err)
			continue
		}
		// Field order as declared: container_port, host_port, host_ip, protocol.
		m := map[string]string{}
		for _, f := range strings.Fields(norm(want)) {
			k, v, _ := strings.Cut(f, ":")
			m[k] = v
		}
		if fmt.Sprint(got[0].GetHostPort()) != m["hostPort"] || fmt.Sprint(got[0].GetContainerPort()) != m["containerPort"] ||
			`"`+got[0].GetHostIp()+`"` != orWord(m["hostIp"], `""`) || (m["protocol"] != "" && got[0].GetProtocol().String() != m["protocol"]) {
			t.Errorf("-p %s = %v, want %s", in, got[0], want)
		}
	}
	for _, bad := range []string{"x:80", "8080:80/icmp", "1.2.3:80:80", "0:80", "1:2:3:4", "8080:70000"} {
		if _, err := parsePublish([]string{bad}); err == nil {
			t.Errorf("-p %s accepted", bad)
		}
	}
}

func TestParseVolumes(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	got, err := parseVolumes([]string{"/srv/data:/data:ro", "./site:/www", "/a:/b:rw"})
	if err != nil || len(got) != 3 || got[0].GetHostPath() != "/srv/data" || !got[0].GetReadonly() ||
		got[1].GetHostPath() != filepath.Join(dir, "site") || got[1].GetContainerPath() != "/www" || got[2].GetReadonly() {
		t.Errorf("parseVolumes: %v %v", got, err)
	}
	for _, bad := range []string{"/a", "myvol:/data", "/a:rel", "/a:/b:rx", ":/b"} {
		if _, err := parseVolumes([]string{bad}); err == nil {
			t.Errorf("-v %s accepted", bad)
		}
	}
	_, err = parseVolumes([]string{"myvol:/data"})
	if err == nil || !strings.Contains(err.Error(), "named volumes are not supported") {
		t.Errorf("named volume: %v", err)
	}
}

func TestReadEnvFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(p, []byte("# comment\n\nA=1\n  B=two words\nHOME\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readEnvFiles([]string{p})
	if err != nil || strings.Join(got, "|") != "A=1|B=two words|HOME" {
		t.Errorf("readEnvFiles: %q %v", got, err)
	}
	if err := os.WriteFile(p, []byte("A B=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnvFiles([]string{p}); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("bad env file: %v", err)
	}
}

// TestRunFlags checks what the docker-style flags put into the pod and
// container configs berth sends.
func TestRunFlags(t *testing.T) {
	runLogRoot = t.TempDir()
	f := &fakeCRI{}
	f.onStart = func(st *runtimeapi.ContainerStatus) {
		appendFile(t, st.GetLogPath(), logText("stdout F ok"))
		time.Sleep(50 * time.Millisecond)
		f.exit(st.GetId(), 0)
	}
	ep := startFake(t, f)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("A=file\nB=file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := berth(t, ep, "run", "--rm", "--name", "flags", "-p", "8080:80", "-v", "/srv:/data:ro",
		"--env-file", envFile, "-e", "B=flag", "--memory", "64m", "--cpus", "1.5", "--runtime", "runsc", "busybox", "true")
	if code != 0 || out != "ok\n" {
		t.Fatalf("run: %d %q %q", code, out, errOut)
	}
	pod, ctr := f.lastPodReq, f.lastCtrCfg
	if pod.GetRuntimeHandler() != "runsc" || len(pod.GetConfig().GetPortMappings()) != 1 || pod.GetConfig().GetPortMappings()[0].GetHostPort() != 8080 {
		t.Errorf("pod request: %s", protojson.Format(pod))
	}
	env := ""
	for _, kv := range ctr.GetEnvs() {
		env += kv.GetKey() + "=" + string(kv.GetValue()) + " "
	}
	res := ctr.GetLinux().GetResources()
	if env != "A=file B=flag " || len(ctr.GetMounts()) != 1 || !ctr.GetMounts()[0].GetReadonly() ||
		res.GetMemoryLimitInBytes() != 64<<20 || res.GetCpuQuota() != 150000 || res.GetCpuPeriod() != 100000 {
		t.Errorf("container config: env %q %s", env, protojson.Format(ctr))
	}

	// --network host: the pod and container take the node's network.
	_, errOut, code = berth(t, ep, "run", "--rm", "--network", "host", "busybox", "true")
	if code != 0 || f.lastPodReq.GetConfig().GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE ||
		f.lastCtrCfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE || f.lastPodReq.GetConfig().GetHostname() != "" {
		t.Errorf("--network host: %d %q %s", code, errOut, protojson.Format(f.lastPodReq))
	}
	_, errOut, code = berth(t, ep, "run", "--network", "host", "-p", "80:80", "busybox")
	if code != 125 || !strings.Contains(errOut, "-p and --network host cannot be used together") {
		t.Errorf("-p with --network host: %d %q", code, errOut)
	}

	// --pull never with an absent image fails before anything is made;
	// --pull always pulls a present one.
	calls := len(f.calls)
	_, errOut, code = berth(t, ep, "run", "--pull", "never", "absent:1", "true")
	if code != 125 || errOut != "berth: image absent:1 is not present, and --pull never forbids pulling it\n" || len(f.calls) != calls {
		t.Errorf("--pull never: %d %q %v", code, errOut, f.calls[calls:])
	}
	_, errOut, code = berth(t, ep, "run", "--pull", "sometimes", "busybox")
	if code != 125 || !strings.Contains(errOut, "want always, missing or never") {
		t.Errorf("--pull sometimes: %d %q", code, errOut)
	}
}
