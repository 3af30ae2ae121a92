package kubelet

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// pid returns container id's host PID (berthd's verbose status).
func (e *env) pid(id string) int {
	e.t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(framework.Ctx(e.t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		e.t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 0 {
		e.t.Fatalf("container %s's pid from verbose status: %v %q", id, err, resp.Info["info"])
	}
	return info.Pid
}

// cgroupOf returns pid's cgroup path in the v1 hierarchy controller.
func cgroupOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 {
			for _, c := range strings.Split(f[1], ",") {
				if c == controller {
					return f[2]
				}
			}
		}
	}
	t.Fatalf("pid %d has no %s cgroup: %s", pid, controller, b)
	return ""
}

func readInt(t *testing.T, p string) int64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return v
}

// Pods with resources land in kubelet's QoS cgroups (cgroupfs driver) with
// the container limits applied by berthd.
func TestQoSCgroups(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("guaranteed", podYAML("guaranteed", `  containers:
  - name: c
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
    resources:
      requests: {cpu: 200m, memory: 48Mi}
      limits: {cpu: 200m, memory: 48Mi}
`))
	e.apply("burstable", podYAML("burstable", `  containers:
  - name: c
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
    resources:
      requests: {cpu: 100m, memory: 16Mi}
      limits: {memory: 32Mi}
`))
	e.apply("besteffort", podYAML("besteffort", `  containers:
  - name: c
    image: {{image}}
    command: ["sh", "-c", "exec sleep 3600"]
`))
	for _, tc := range []struct {
		pod, qos, parent string
		memLimit         int64 // bytes; 0: unlimited
		cpuQuota         int64 // µs per 100 ms period; -1: none
		cpuShares        int64
	}{
		{"guaranteed", "Guaranteed", "kubepods", 48 << 20, 20000, 204},
		{"burstable", "Burstable", "kubepods/burstable", 32 << 20, -1, 102},
		{"besteffort", "BestEffort", "kubepods/besteffort", 0, -1, 2},
	} {
		p := e.running(tc.pod)
		if p.Status.QOSClass != tc.qos {
			t.Errorf("%s: kubelet's QoS class %q, want %q", tc.pod, p.Status.QOSClass, tc.qos)
		}
		pid := e.pid(p.container("c").id())
		want := fmt.Sprintf("%s/%s/pod%s/", e.d.CgroupParent, tc.parent, p.Metadata.UID)
		mem := cgroupOf(t, pid, "memory")
		if !strings.HasPrefix(mem, want) {
			t.Errorf("%s: container's memory cgroup %s, want below %s", tc.pod, mem, want)
			continue
		}
		lim := readInt(t, filepath.Join("/sys/fs/cgroup/memory", mem, "memory.limit_in_bytes"))
		if tc.memLimit > 0 && lim != tc.memLimit || tc.memLimit == 0 && lim < 1<<50 {
			t.Errorf("%s: memory.limit_in_bytes %d, want %d", tc.pod, lim, tc.memLimit)
		}
		cpu := cgroupOf(t, pid, "cpu")
		if q := readInt(t, filepath.Join("/sys/fs/cgroup/cpu", cpu, "cpu.cfs_quota_us")); q != tc.cpuQuota {
			t.Errorf("%s: cpu.cfs_quota_us %d, want %d", tc.pod, q, tc.cpuQuota)
		}
		if s := readInt(t, filepath.Join("/sys/fs/cgroup/cpu", cpu, "cpu.shares")); s != tc.cpuShares {
			t.Errorf("%s: cpu.shares %d, want %d", tc.pod, s, tc.cpuShares)
		}
	}
}

// shareProcessNamespace: true puts the pod's containers in one PID
// namespace.
func TestShareProcessNamespace(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.apply("sharepid", podYAML("sharepid", `  shareProcessNamespace: true
  containers:
  - name: a
    image: {{image}}
    command: ["sleep", "3601"]
  - name: b
    image: {{image}}
    command: ["sleep", "3602"]
`))
	p := e.running("sharepid")
	out := e.execSync(p.container("b").id(), "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
	if !strings.Contains(out, "sleep 3601") || !strings.Contains(out, "sleep 3602") {
		t.Errorf("processes seen from container b: %q, want a's sleep 3601 and its own", out)
	}
}

// hostPort is reachable on 127.0.0.1.
func TestHostPort(t *testing.T) {
	e := newEnv(t, envOptions{})
	port := freePort(t)
	e.apply("hostport", podYAML("hostport", fmt.Sprintf(`  containers:
  - name: web
    image: {{image}}
    command: ["sh", "-c", "mkdir -p /www && echo hello-hostport > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - {containerPort: 8080, hostPort: %d, protocol: TCP}
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
`, port)))
	e.running("hostport")
	c := &http.Client{Timeout: 3 * time.Second}
	e.eventually(20*time.Second, "GET via the hostPort on 127.0.0.1", func() error {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "hello-hostport\n" {
			return fmt.Errorf("%s %q", resp.Status, b)
		}
		return nil
	})
}

// kubelet's log rotation (small containerLogMaxSize) renames the log and
// calls ReopenContainerLog; no line is lost across the rotated files.
func TestLogRotation(t *testing.T) {
	e := newEnv(t, envOptions{KubeletConfig: "containerLogMaxSize: 4Ki\ncontainerLogMaxFiles: 50\ncontainerLogMonitorInterval: 3s\n"})
	const n = 600
	e.apply("chatty", podYAML("chatty", fmt.Sprintf(`  containers:
  - name: c
    image: {{image}}
    command: ["sh", "-c", "i=0; while [ $i -lt %d ]; do echo \"line $i padding-padding-padding\"; i=$((i+1)); sleep 0.05; done; exec sleep 3600"]
`, n)))
	p := e.running("chatty")
	dir := filepath.Dir(e.logFile(p, "c", 0))
	var got []string
	var files []string
	e.eventually(2*time.Minute, "every line in the log files", func() error {
		var err error
		got, files, err = readRotated(t, dir)
		if err != nil {
			return err
		}
		if len(got) < n {
			return fmt.Errorf("%d lines in %d files", len(got), len(files))
		}
		return nil
	})
	for i, l := range got {
		if want := fmt.Sprintf("line %d padding-padding-padding", i); l != want {
			t.Fatalf("line %d of the rotated logs is %q, want %q (files %v)", i, l, want, files)
		}
	}
	if len(files) < 3 {
		t.Errorf("log files %v: want at least two rotations", files)
	}
	t.Logf("%d lines in %d files: %v", len(got), len(files), files)
	if b, err := os.ReadFile(e.d.LogPath); err != nil || !strings.Contains(string(b), "ReopenContainerLog") {
		t.Errorf("berthd's debug log names no ReopenContainerLog call (%v)", err)
	}
}

// readRotated reads a container's log directory: rotated files
// (0.log.<time>, gzipped ones too) oldest first, then 0.log.
func readRotated(t *testing.T, dir string) ([]string, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "0.log.") && !strings.HasSuffix(en.Name(), ".tmp") {
			names = append(names, en.Name())
		}
	}
	// 0.log.<YYYYMMDD-hhmmss>[.gz]: name order is time order.
	sort.Strings(names)
	names = append(names, "0.log")
	var lines []string
	for _, name := range names {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, ".gz") {
			f, err := os.Open(p)
			if err != nil {
				return nil, nil, err
			}
			zr, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				return nil, nil, err
			}
			tmp := filepath.Join(t.TempDir(), "plain")
			out, err := os.Create(tmp)
			if err == nil {
				_, err = io.Copy(out, zr)
				out.Close()
			}
			f.Close()
			if err != nil {
				return nil, nil, err
			}
			p = tmp
		}
		l, err := readCRILog(t, p)
		if err != nil {
			return nil, nil, err
		}
		lines = append(lines, l...)
	}
	return lines, names, nil
}

// imagePullPolicy IfNotPresent keeps the image a tag named when it was
// pulled; Always pulls again and gets the image the tag has moved to.
func TestImagePullPolicyMovedTag(t *testing.T) {
	e := newEnv(t, envOptions{})
	version := func(v string) string {
		img, err := testimage.Build(testimage.Options{Layers: []testimage.Layer{{Files: map[string]string{"/version": v + "\n"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return e.reg.Push(t, "e2e/moving:v1", img)
	}
	version("a")
	pod := func(name, policy string) {
		e.apply(name, podYAML(name, fmt.Sprintf(`  containers:
  - name: c
    image: %s/e2e/moving:v1
    imagePullPolicy: %s
    command: ["sh", "-c", "exec sleep 3600"]
`, upstream, policy)))
	}
	versionIn := func(name string) string {
		p := e.running(name)
		return strings.TrimSpace(e.execSync(p.container("c").id(), "cat", "/version"))
	}
	pod("first", "IfNotPresent")
	if v := versionIn("first"); v != "a" {
		t.Fatalf("first pod runs version %q, want a", v)
	}
	version("b") // the tag moves
	pod("ifnotpresent", "IfNotPresent")
	if v := versionIn("ifnotpresent"); v != "a" {
		t.Errorf("IfNotPresent after the tag moved runs version %q, want a (the image already present)", v)
	}
	pod("always", "Always")
	if v := versionIn("always"); v != "b" {
		t.Errorf("Always after the tag moved runs version %q, want b (pulled again)", v)
	}
	if v := versionIn("first"); v != "a" {
		t.Errorf("the first pod now runs version %q, want a still", v)
	}
}
