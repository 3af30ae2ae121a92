package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// verbsCRI adds to fakeCRI the RPCs of the newer verbs.
type verbsCRI struct {
	*fakeCRI
	updates []*runtimeapi.UpdateContainerResourcesRequest
}

func (f *verbsCRI) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	use := func(mp string, b, i uint64) *runtimeapi.FilesystemUsage {
		return &runtimeapi.FilesystemUsage{FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: mp},
			UsedBytes: &runtimeapi.UInt64Value{Value: b}, InodesUsed: &runtimeapi.UInt64Value{Value: i}}
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems:     []*runtimeapi.FilesystemUsage{use("/var/lib/berth/images", 123_400_000, 2345)},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{use("/var/lib/berth/containers", 5_000, 12)},
	}, nil
}

func (f *verbsCRI) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

func (f *verbsCRI) UpdateContainerResources(_ context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, req)
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

func (f *verbsCRI) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: "RuntimeReady", Status: true}, {Type: "NetworkReady", Status: false, Reason: "NetworkPluginNotReady", Message: "no CNI"}}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "runc", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: true}}, {Name: ""}},
		Info:            map[string]string{"config": `{"root":"/var/lib/berth"}`, "network": "berth0"},
	}, nil
}

func (f *verbsCRI) ListPodSandboxStats(context.Context, *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: []*runtimeapi.PodSandboxStats{{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b", Metadata: &runtimeapi.PodSandboxMetadata{Name: "nginx", Namespace: "default"}},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:        &runtimeapi.CpuUsage{UsageNanoCores: &runtimeapi.UInt64Value{Value: 250_000_000}},
			Memory:     &runtimeapi.MemoryUsage{WorkingSetBytes: &runtimeapi.UInt64Value{Value: 7_340_000}},
			Process:    &runtimeapi.ProcessUsage{ProcessCount: &runtimeapi.UInt64Value{Value: 3}},
			Containers: []*runtimeapi.ContainerStats{{}, {}},
		},
	}}}, nil
}

func (f *verbsCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
	pod := &runtimeapi.PodSandboxStatus{Id: "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b", Metadata: &runtimeapi.PodSandboxMetadata{Name: "nginx", Namespace: "default"}}
	evs := []*runtimeapi.ContainerEventResponse{
		{ContainerId: "c1aaaaaaaaaaaaaaaaaaaa", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, CreatedAt: 1700000000_000000000, PodSandboxStatus: pod,
			ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "c1aaaaaaaaaaaaaaaaaaaa", Metadata: &runtimeapi.ContainerMetadata{Name: "web"}}}},
		{ContainerId: "c9zzzzzzzzzzzzzzzzzzzz", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, CreatedAt: 1700000001_000000000,
			PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: "other"}},
		{ContainerId: "c1aaaaaaaaaaaaaaaaaaaa", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, CreatedAt: 1700000002_000000000, PodSandboxStatus: pod,
			ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "c1aaaaaaaaaaaaaaaaaaaa", Metadata: &runtimeapi.ContainerMetadata{Name: "web"}, ExitCode: 3, Reason: "Error"}}},
	}
	for _, ev := range evs {
		if err := s.Send(ev); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

func startVerbsFake(t *testing.T) (*verbsCRI, string) {
	f := &verbsCRI{fakeCRI: sampleCRI()}
	f.statuses = map[string]*runtimeapi.ContainerStatus{
		"c1aaaaaaaaaaaaaaaaaaaa": {Id: "c1aaaaaaaaaaaaaaaaaaaa", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Resources: &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 1 << 30, OomScoreAdj: 7}}},
	}
	return f, startFakeServer(t, f.fakeCRI, f)
}

// TestNewVerbsGolden checks the table output of the newer verbs.
func TestNewVerbsGolden(t *testing.T) {
	_, ep := startVerbsFake(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"imagefsinfo"}, `KIND         MOUNTPOINT                  USED    INODES
images       /var/lib/berth/images       123MB   2345
containers   /var/lib/berth/containers   5kB     12
`},
		{[]string{"runtime-config"}, "Cgroup Driver: cgroupfs\n"},
		{[]string{"runtime-config", "-o", "json"}, `{
  "linux": {
    "cgroupDriver": "CGROUPFS"
  }
}
`},
		{[]string{"statsp"}, `POD ID          POD     NAMESPACE   CPU %   MEM      PROCS   CONTAINERS
1f0e3c9a7b2d4   nginx   default     25.00   7.34MB   3       2
`},
		{[]string{"info", "-o", "table"}, "CONDITION      STATUS   REASON                  MESSAGE\n" +
			"RuntimeReady   true                             \n" +
			"NetworkReady   false    NetworkPluginNotReady   no CNI\n" +
			"\n" +
			"RUNTIME HANDLER   RECURSIVE RO MOUNTS   USER NAMESPACES\n" +
			"runc              false                 true\n" +
			"(default)         false                 false\n"},
		{[]string{"info", "network"}, "\"berth0\"\n"},
		{[]string{"info", "config", "-o", "yaml"}, "root: /var/lib/berth\n"},
		{[]string{"events", "--since", "2023-11-14T00:00:00Z", "--count", "2"}, "2023-11-14T22:13:20Z  started  c1aaaaaaaaaaa  web  pod=default/nginx\n" +
			"2023-11-14T22:13:21Z  created  c9zzzzzzzzzzz  -  pod=other\n"},
		{[]string{"events", "--since", "2023-11-14T00:00:00Z", "--pod", "nginx", "--count", "2"}, "2023-11-14T22:13:20Z  started  c1aaaaaaaaaaa  web  pod=default/nginx\n" +
			"2023-11-14T22:13:22Z  stopped  c1aaaaaaaaaaa  web  pod=default/nginx exit=3 reason=Error\n"},
	}
	t.Setenv("TZ", "UTC")
	for _, tt := range tests {
		out, errOut, code := berth(t, ep, tt.args...)
		if code != 0 || out != tt.want {
			t.Errorf("%v: code %d stderr %q\n%s\nwant\n%s", tt.args, code, errOut, out, tt.want)
		}
	}
}

func TestInfoSections(t *testing.T) {
	_, ep := startVerbsFake(t)
	out, _, code := berth(t, ep, "info")
	for _, want := range []string{`"status": {`, `"runtimeHandlers": [`, `"config": {`, `"root": "/var/lib/berth"`, `"network": "berth0"`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("info lacks %s:\n%s", want, out)
		}
	}
	_, errOut, code := berth(t, ep, "info", "nope")
	if code != 125 || errOut != "berth: info: no section \"nope\"; there are config, network, runtimeHandlers, status\n" {
		t.Errorf("info nope: %d %q", code, errOut)
	}
}

func TestEventsJSON(t *testing.T) {
	_, ep := startVerbsFake(t)
	out, errOut, code := berth(t, ep, "events", "--since", "2023-11-14T22:00:00Z", "-o", "json", "--container", "web", "--count", "2")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("events -o json: %d %q %q", code, out, errOut)
	}
	var ev runtimeapi.ContainerEventResponse
	if err := protojson.Unmarshal([]byte(lines[1]), &ev); err != nil || ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT || ev.GetContainersStatuses()[0].GetExitCode() != 3 {
		t.Errorf("second event %q: %v", lines[1], err)
	}
}

func TestUpdate(t *testing.T) {
	f, ep := startVerbsFake(t)
	out, errOut, code := berth(t, ep, "update", "--memory", "256m", "--cpus", "0.5", "web")
	if code != 0 || out != "c1aaaaaaaaaaaaaaaaaaaa\n" || len(f.updates) != 1 {
		t.Fatalf("update: %d %q %q %d", code, out, errOut, len(f.updates))
	}
	got := f.updates[0].GetLinux()
	// What was not given keeps its value (shares, oom score).
	if got.GetMemoryLimitInBytes() != 256<<20 || got.GetCpuPeriod() != 100000 || got.GetCpuQuota() != 50000 || got.GetCpuShares() != 512 || got.GetOomScoreAdj() != 7 {
		t.Errorf("update sent %v", got)
	}
	_, errOut, code = berth(t, ep, "update", "web")
	if code != 125 || !strings.Contains(errOut, "give at least one of") {
		t.Errorf("update without flags: %d %q", code, errOut)
	}
	_, errOut, code = berth(t, ep, "update", "--memory", "lots", "web")
	if code != 125 || errOut != "berth: --memory: \"lots\": want a size such as 512m or 1g\n" {
		t.Errorf("update --memory lots: %d %q", code, errOut)
	}
}

func TestParsePortsAndBytes(t *testing.T) {
	pp, err := parsePorts([]string{"8080:80", "53", ":443"})
	if err != nil || fmt.Sprint(pp) != "[{8080 80} {53 53} {0 443}]" {
		t.Errorf("parsePorts: %v %v", pp, err)
	}
	for _, bad := range []string{"x:80", "80:", "70000", "1:0"} {
		if _, err := parsePorts([]string{bad}); err == nil {
			t.Errorf("parsePorts(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"512": 512, "64k": 64 << 10, "256m": 256 << 20, "1.5g": 3 << 29, "2GB": 2 << 30} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	f, ep := startVerbsFake(t)
	dir := t.TempDir()
	t.Chdir(dir)
	out, errOut, code := berth(t, ep, "load", "-i", "img.tar")
	if code != 0 || out != "Imported sha256:1111\nImported sha256:2222\n" || f.imported[0] != dir+"/img.tar" {
		t.Errorf("load -i: %d %q %q %v", code, out, errOut, f.imported)
	}
	_, errOut, code = berth(t, ep, "load")
	if code != 125 || !strings.Contains(errOut, "which file?") {
		t.Errorf("load without file: %d %q", code, errOut)
	}
}

// TestOutputOptions checks --no-trunc, go-template and the --image filter.
func TestOutputOptions(t *testing.T) {
	ep := startFake(t, sampleCRI())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ps", "-a", "--no-trunc"}, `CONTAINER                IMAGE                            CREATED         STATE     NAME      ATTEMPT   POD ID                             POD
c1aaaaaaaaaaaaaaaaaaaa   docker.io/library/nginx:latest   5 minutes ago   Running   web       0         1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b   nginx
c1bbbbbbbbbbbbbbbbbbbb   registry.k8s.io/coredns:v1.11    6 minutes ago   Exited    coredns   1         2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b   dns
`},
		{[]string{"ps", "-a", "-o", `go-template={{range .containers}}{{.metadata.name}} {{.state}}{{"\n"}}{{end}}`}, "web CONTAINER_RUNNING\ncoredns CONTAINER_EXITED\n"},
		{[]string{"pods", "-o", `go-template={{range .items}}{{short .id}} {{json .metadata.name}}{{"\n"}}{{end}}`}, "1f0e3c9a7b2d4 \"nginx\"\n2a0e3c9a7b2d4 \"dns\"\n"},
		{[]string{"images", "-o", `go-template={{range .images}}{{index .repoTags 0}} {{size .size}}{{"\n"}}{{end}}`}, "docker.io/library/busybox:latest 4.26MB\nregistry.k8s.io/coredns:v1.11 18.5MB\n"},
		{[]string{"ps", "-qa", "--image", "nginx"}, "c1aaaaaaaaaaaaaaaaaaaa\n"},
		{[]string{"ps", "-qa", "--image", "registry.k8s.io/coredns:v1.11"}, "c1bbbbbbbbbbbbbbbbbbbb\n"},
		{[]string{"ps", "-qa", "--image", "bbbb00"}, "c1bbbbbbbbbbbbbbbbbbbb\n"},
		{[]string{"ps", "-qa", "--image", "busybox"}, ""},
	}
	for _, tt := range tests {
		out, errOut, code := berth(t, ep, tt.args...)
		if code != 0 || out != tt.want {
			t.Errorf("%v: code %d stderr %q\n%s\nwant\n%s", tt.args, code, errOut, out, tt.want)
		}
	}
	_, errOut, code := berth(t, ep, "ps", "-o", "go-template={{.x")
	if code != 125 || !strings.HasPrefix(errOut, "berth: -o go-template: ") {
		t.Errorf("bad template: %d %q", code, errOut)
	}
	_, errOut, code = berth(t, ep, "ps", "-o", "wide")
	if code != 125 || errOut != "berth: unknown output format \"wide\": use table, json, yaml or go-template=TEMPLATE\n" {
		t.Errorf("-o wide: %d %q", code, errOut)
	}
}

// TestWatch: --watch prints the listing again until interrupted; to a pipe
// the listings are separated by a blank line.
func TestWatch(t *testing.T) {
	ep := startFake(t, sampleCRI())
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	var out, errb strings.Builder
	code := execute(ctx, []string{"--socket", ep, "pods", "-q", "--watch", "--interval", "100ms"}, strings.NewReader(""), &out, &errb)
	one := "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"
	if code != 0 || !strings.HasPrefix(out.String(), one+"\n"+one) {
		t.Errorf("pods --watch: %d %q %q", code, out.String(), errb.String())
	}
}

// TestEventsSince: berthd's replay (events from before the stream opened)
// prints only from --since on; without it, nothing but new events.
func TestEventsSince(t *testing.T) {
	_, ep := startVerbsFake(t)
	out, errOut, code := berth(t, ep, "events", "--since", "2023-11-14T22:13:21Z", "--count", "2")
	if code != 0 || out != "2023-11-14T22:13:21Z  created  c9zzzzzzzzzzz  -  pod=other\n"+
		"2023-11-14T22:13:22Z  stopped  c1aaaaaaaaaaa  web  pod=default/nginx exit=3 reason=Error\n" {
		t.Errorf("events --since: %d %q %q", code, out, errOut)
	}
	// The fake replays only old events, then waits: nothing prints.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var o, e bytes.Buffer
	if code := execute(ctx, []string{"--socket", ep, "events"}, strings.NewReader(""), &o, &e); code != 0 || o.Len() != 0 {
		t.Errorf("events without --since: %d %q %q", code, o.String(), e.String())
	}
	if _, errOut, code := berth(t, ep, "events", "--since", "yesterday"); code != 125 || !strings.Contains(errOut, "neither a duration") {
		t.Errorf("bad --since: %d %q", code, errOut)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got, err := parseSince("10m", now); err != nil || !got.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("parseSince(10m) = %v, %v", got, err)
	}
}
