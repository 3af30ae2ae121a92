package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/admin"
)

// fakeCRI implements the few CRI methods the CLI calls, over in-memory
// objects.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	mu       sync.Mutex
	pods     []*runtimeapi.PodSandbox
	podCfgs  map[string]*runtimeapi.PodSandboxConfig
	ctrs     []*runtimeapi.Container
	statuses map[string]*runtimeapi.ContainerStatus
	images   []*runtimeapi.Image
	calls    []string
	imported []string
	saved    []admin.SaveRequest
	// saveFail, when set, cuts SaveImages short after some output.
	saveFail error
	// onStart runs when a container starts (the test writes its log).
	onStart func(st *runtimeapi.ContainerStatus)
	// pullErr, when set, is PullImage's answer.
	pullErr error
	// The last pod run and container created, as sent.
	lastPodReq *runtimeapi.RunPodSandboxRequest
	lastCtrCfg *runtimeapi.ContainerConfig
	// withEvents serves GetContainerEvents (else Unimplemented) to subs.
	withEvents  bool
	subs        []chan *runtimeapi.ContainerEventResponse
	statusCalls int
}

func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
	if !f.withEvents {
		return status.Error(codes.Unimplemented, "no events")
	}
	ch := make(chan *runtimeapi.ContainerEventResponse, 16)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	for {
		select {
		case <-s.Context().Done():
			return nil
		case ev := <-ch:
			if err := s.Send(ev); err != nil {
				return err
			}
		}
	}
}

// waitSubscriber gives an event stream opened just before (as berth run
// opens it before RunPodSandbox) time to reach the server, as a real pod
// start does: the fake answers at once, its handler may not have run yet.
func (f *fakeCRI) waitSubscriber() {
	for deadline := time.Now().Add(2 * time.Second); f.withEvents && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		n := len(f.subs)
		f.mu.Unlock()
		if n > 0 {
			return
		}
	}
}

// emit sends an event about container id to the subscribers; f.mu is held.
func (f *fakeCRI) emit(id string, t runtimeapi.ContainerEventType) {
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: t,
		ContainersStatuses: []*runtimeapi.ContainerStatus{proto.Clone(f.statuses[id]).(*runtimeapi.ContainerStatus)}}
	for _, ch := range f.subs {
		ch <- ev
	}
}

func (f *fakeCRI) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeCRI) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "berth", RuntimeVersion: "test", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeCRI) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, p := range f.pods {
		if s := req.GetFilter().GetState(); s != nil && s.GetState() != p.GetState() {
			continue
		}
		if !labelsMatch(req.GetFilter().GetLabelSelector(), p.GetLabels()) {
			continue
		}
		out = append(out, p)
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeCRI) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range f.ctrs {
		flt := req.GetFilter()
		if s := flt.GetState(); s != nil && s.GetState() != c.GetState() {
			continue
		}
		if flt.GetPodSandboxId() != "" && flt.GetPodSandboxId() != c.GetPodSandboxId() {
			continue
		}
		out = append(out, c)
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	st, ok := f.statuses[req.GetContainerId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container %q not found", req.GetContainerId())
	}
	// A copy: the fake changes states while responses are being encoded.
	st = proto.Clone(st).(*runtimeapi.ContainerStatus)
	return &runtimeapi.ContainerStatusResponse{Status: st, Info: map[string]string{"info": `{"pid": 42}`}}, nil
}

func (f *fakeCRI) StopContainer(_ context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	f.record("StopContainer " + req.GetContainerId())
	return &runtimeapi.StopContainerResponse{}, nil
}

func (f *fakeCRI) RemoveContainer(_ context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	f.record("RemoveContainer " + req.GetContainerId())
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeCRI) ExecSync(_ context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	f.record(fmt.Sprintf("ExecSync %s %q %d", req.GetContainerId(), req.GetCmd(), req.GetTimeout()))
	return &runtimeapi.ExecSyncResponse{Stdout: []byte("out\n"), Stderr: []byte("err\n"), ExitCode: 7}, nil
}

func (f *fakeCRI) RunPodSandbox(_ context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("pod%061d", len(f.pods))
	f.pods = append(f.pods, &runtimeapi.PodSandbox{Id: id, Metadata: req.GetConfig().GetMetadata(), State: runtimeapi.PodSandboxState_SANDBOX_READY})
	f.podCfgs[id] = req.GetConfig()
	f.lastPodReq = req
	f.calls = append(f.calls, "RunPodSandbox "+req.GetConfig().GetMetadata().GetName())
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (f *fakeCRI) CreateContainer(_ context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	f.waitSubscriber()
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("ctr%061d", len(f.ctrs))
	cfg := req.GetConfig()
	f.lastCtrCfg = cfg
	f.ctrs = append(f.ctrs, &runtimeapi.Container{Id: id, PodSandboxId: req.GetPodSandboxId(), Metadata: cfg.GetMetadata(), Image: cfg.GetImage()})
	f.statuses[id] = &runtimeapi.ContainerStatus{
		Id: id, Metadata: cfg.GetMetadata(), State: runtimeapi.ContainerState_CONTAINER_CREATED,
		LogPath: filepath.Join(f.podCfgs[req.GetPodSandboxId()].GetLogDirectory(), cfg.GetLogPath()),
	}
	f.calls = append(f.calls, fmt.Sprintf("CreateContainer %s %s %q", cfg.GetMetadata().GetName(), cfg.GetImage().GetImage(), cfg.GetArgs()))
	f.emit(id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (f *fakeCRI) StartContainer(_ context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	f.mu.Lock()
	st := f.statuses[req.GetContainerId()]
	st.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	f.calls = append(f.calls, "StartContainer "+req.GetContainerId())
	f.emit(req.GetContainerId(), runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	onStart := f.onStart
	st = proto.Clone(st).(*runtimeapi.ContainerStatus)
	f.mu.Unlock()
	if onStart != nil {
		go onStart(st)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

func (f *fakeCRI) exit(id string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[id].State = runtimeapi.ContainerState_CONTAINER_EXITED
	f.statuses[id].ExitCode = code
	f.emit(id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

func (f *fakeCRI) StopPodSandbox(_ context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	f.record("StopPodSandbox " + req.GetPodSandboxId())
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeCRI) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.record("RemovePodSandbox " + req.GetPodSandboxId())
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeCRI) ListImages(context.Context, *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	return &runtimeapi.ListImagesResponse{Images: f.images}, nil
}

func (f *fakeCRI) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	for _, im := range f.images {
		if im.GetId() == req.GetImage().GetImage() {
			return &runtimeapi.ImageStatusResponse{Image: im}, nil
		}
	}
	return &runtimeapi.ImageStatusResponse{}, nil
}

func (f *fakeCRI) PullImage(_ context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	f.record("PullImage " + req.GetImage().GetImage())
	if f.pullErr != nil {
		return nil, f.pullErr
	}
	return &runtimeapi.PullImageResponse{ImageRef: "sha256:feed"}, nil
}

func (f *fakeCRI) ImportImage(_ context.Context, path string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imported = append(f.imported, path)
	return []string{"sha256:1111", "sha256:2222"}, nil
}

// startFake serves f on a unix socket in a temp dir and returns its
// endpoint.
func startFake(t *testing.T, f *fakeCRI) string {
	t.Helper()
	return startFakeServer(t, f, f)
}

// startFakeServer serves f's state with the runtime service srv (f itself,
// or a type that embeds it and adds methods).
func startFakeServer(t *testing.T, f *fakeCRI, srv runtimeapi.RuntimeServiceServer) string {
	t.Helper()
	if f.statuses == nil {
		f.statuses = map[string]*runtimeapi.ContainerStatus{}
	}
	if f.podCfgs == nil {
		f.podCfgs = map[string]*runtimeapi.PodSandboxConfig{}
	}
	sock := filepath.Join(t.TempDir(), "berth.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(gs, srv)
	if is, ok := srv.(runtimeapi.ImageServiceServer); ok {
		runtimeapi.RegisterImageServiceServer(gs, is)
	} else {
		runtimeapi.RegisterImageServiceServer(gs, f)
	}
	admin.Register(gs, f)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return "unix://" + sock
}

// berth runs the CLI against endpoint and returns stdout, stderr and the
// exit code.
func berth(t *testing.T, endpoint string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), append([]string{"--socket", endpoint}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func sampleCRI() *fakeCRI {
	now := time.Now()
	created := now.Add(-5*time.Minute - 10*time.Second).UnixNano()
	return &fakeCRI{
		pods: []*runtimeapi.PodSandbox{
			{Id: "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b", CreatedAt: created, State: runtimeapi.PodSandboxState_SANDBOX_READY,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "nginx", Namespace: "default", Attempt: 0}},
			{Id: "2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b", CreatedAt: now.Add(-3 * time.Hour).UnixNano(), State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "dns", Namespace: "kube-system", Attempt: 2}, RuntimeHandler: "runsc",
				Labels: map[string]string{"app": "dns"}},
		},
		ctrs: []*runtimeapi.Container{
			{Id: "c1aaaaaaaaaaaaaaaaaaaa", PodSandboxId: "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b", CreatedAt: created, State: runtimeapi.ContainerState_CONTAINER_RUNNING,
				Metadata: &runtimeapi.ContainerMetadata{Name: "web"}, Image: &runtimeapi.ImageSpec{Image: "docker.io/library/nginx:latest"}},
			{Id: "c1bbbbbbbbbbbbbbbbbbbb", PodSandboxId: "2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b", CreatedAt: created - int64(time.Minute), State: runtimeapi.ContainerState_CONTAINER_EXITED,
				Metadata: &runtimeapi.ContainerMetadata{Name: "coredns", Attempt: 1}, Image: &runtimeapi.ImageSpec{Image: "sha256:bbbb0000000000000000"}},
		},
		images: []*runtimeapi.Image{
			{Id: "sha256:bbbb0000000000000000", RepoTags: []string{"registry.k8s.io/coredns:v1.11"}, Size: 18_500_000},
			{Id: "sha256:aaaa0000000000000000", RepoTags: []string{"docker.io/library/busybox:latest", "docker.io/library/busybox:1.36"},
				RepoDigests: []string{"docker.io/library/busybox@sha256:d1d1d1d1d1d1d1d1d1"}, Size: 4_261_000},
		},
	}
}

func TestPods(t *testing.T) {
	ep := startFake(t, sampleCRI())
	out, errOut, code := berth(t, ep, "pods")
	want := `POD ID          CREATED         STATE      NAME    NAMESPACE     ATTEMPT   RUNTIME
1f0e3c9a7b2d4   5 minutes ago   Ready      nginx   default       0         (default)
2a0e3c9a7b2d4   3 hours ago     NotReady   dns     kube-system   2         runsc
`
	if code != 0 || out != want {
		t.Errorf("pods: code %d stderr %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"pods", "-q"}, "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"},
		{[]string{"pods", "-q", "--state", "ready"}, "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"},
		{[]string{"pods", "-q", "--namespace", "^kube"}, "2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"},
		{[]string{"pods", "-q", "--name", "ngi"}, "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"},
		{[]string{"pods", "-q", "--label", "app=dns"}, "2a0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"},
		{[]string{"pods", "-q", "--id", "1f"}, "1f0e3c9a7b2d4e5f6a7b8c9d0e1f2a3b\n"},
	}
	for _, tt := range tests {
		out, errOut, code := berth(t, ep, tt.args...)
		if code != 0 || out != tt.want {
			t.Errorf("%v: code %d out %q stderr %q, want %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestPs(t *testing.T) {
	ep := startFake(t, sampleCRI())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ps", "-q"}, "c1aaaaaaaaaaaaaaaaaaaa\n"},
		{[]string{"ps", "-q", "-a"}, "c1aaaaaaaaaaaaaaaaaaaa\nc1bbbbbbbbbbbbbbbbbbbb\n"},
		{[]string{"ps", "-q", "--state", "exited"}, "c1bbbbbbbbbbbbbbbbbbbb\n"},
		{[]string{"ps", "-qa", "--pod", "dns"}, "c1bbbbbbbbbbbbbbbbbbbb\n"},
		{[]string{"ps", "-qa", "--name", "^web$"}, "c1aaaaaaaaaaaaaaaaaaaa\n"},
		{[]string{"ps", "-a"}, `CONTAINER       IMAGE                            CREATED         STATE     NAME      ATTEMPT   POD ID          POD
c1aaaaaaaaaaa   docker.io/library/nginx:latest   5 minutes ago   Running   web       0         1f0e3c9a7b2d4   nginx
c1bbbbbbbbbbb   registry.k8s.io/coredns:v1.11    6 minutes ago   Exited    coredns   1         2a0e3c9a7b2d4   dns
`},
	}
	for _, tt := range tests {
		out, errOut, code := berth(t, ep, tt.args...)
		if code != 0 || out != tt.want {
			t.Errorf("%v: code %d stderr %q\n%s\nwant\n%s", tt.args, code, errOut, out, tt.want)
		}
	}
}

func TestImages(t *testing.T) {
	ep := startFake(t, sampleCRI())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"images"}, `IMAGE                       TAG      IMAGE ID        SIZE
docker.io/library/busybox   latest   aaaa000000000   4.26MB
docker.io/library/busybox   1.36     aaaa000000000   4.26MB
registry.k8s.io/coredns     v1.11    bbbb000000000   18.5MB
`},
		{[]string{"images", "--digests"}, `IMAGE                       TAG      DIGEST          IMAGE ID        SIZE
docker.io/library/busybox   latest   d1d1d1d1d1d1d   aaaa000000000   4.26MB
docker.io/library/busybox   1.36     d1d1d1d1d1d1d   aaaa000000000   4.26MB
registry.k8s.io/coredns     v1.11    <none>          bbbb000000000   18.5MB
`},
		{[]string{"images", "-q"}, "sha256:aaaa0000000000000000\nsha256:bbbb0000000000000000\n"},
	}
	for _, tt := range tests {
		out, errOut, code := berth(t, ep, tt.args...)
		if code != 0 || out != tt.want {
			t.Errorf("%v: code %d stderr %q\n%s\nwant\n%s", tt.args, code, errOut, out, tt.want)
		}
	}
}

func TestErrorsAndResolution(t *testing.T) {
	f := sampleCRI()
	ep := startFake(t, f)

	// Ambiguous prefix names the candidates.
	_, errOut, code := berth(t, ep, "stop", "c1")
	if code != 125 || !strings.Contains(errOut, `ID prefix "c1" matches 2 containers: c1aaaaaaaaaaa (web), c1bbbbbbbbbbb (coredns)`) {
		t.Errorf("stop c1: code %d stderr %q", code, errOut)
	}
	// A name resolves; the gRPC error is its message, no struct, one line.
	_, errOut, code = berth(t, ep, "inspect", "web")
	if code != 125 || errOut != "berth: container c1aaaaaaaaaaa: container \"c1aaaaaaaaaaaaaaaaaaaa\" not found\n" {
		t.Errorf("inspect web: code %d stderr %q", code, errOut)
	}
	// Unique prefix resolves to the full ID.
	out, errOut, code := berth(t, ep, "stop", "-t", "0", "c1b")
	if code != 0 || out != "c1bbbbbbbbbbbbbbbbbbbb\n" || f.calls[len(f.calls)-1] != "StopContainer c1bbbbbbbbbbbbbbbbbbbb" {
		t.Errorf("stop c1b: code %d out %q stderr %q calls %v", code, out, errOut, f.calls)
	}
	// Unreachable daemon.
	_, errOut, code = berth(t, "unix://"+filepath.Join(t.TempDir(), "none.sock"), "version")
	if code != 125 || !strings.HasPrefix(errOut, "berth: version: cannot reach berthd at unix://") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("version without daemon: code %d stderr %q", code, errOut)
	}
}

func TestInspectExecImport(t *testing.T) {
	f := sampleCRI()
	f.statuses = map[string]*runtimeapi.ContainerStatus{
		"c1aaaaaaaaaaaaaaaaaaaa": {Id: "c1aaaaaaaaaaaaaaaaaaaa", State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: 1700000000123456789},
	}
	ep := startFake(t, f)

	out, errOut, code := berth(t, ep, "inspect", "web")
	if code != 0 || !strings.Contains(out, `"id": "c1aaaaaaaaaaaaaaaaaaaa"`) || !strings.Contains(out, `"pid": 42`) ||
		!strings.Contains(out, `"createdAt": "1700000000123456789"`) || !strings.Contains(out, `"exitCode": 0`) {
		t.Errorf("inspect: code %d stderr %q\n%s", code, errOut, out)
	}
	out, _, code = berth(t, ep, "inspect", "-o", "yaml", "web")
	if code != 0 || !strings.Contains(out, "state: CONTAINER_RUNNING") {
		t.Errorf("inspect -o yaml: code %d\n%s", code, out)
	}

	out, errOut, code = berth(t, ep, "exec", "web", "sh", "-c", "exit 7")
	if code != 7 || out != "out\n" || errOut != "err\n" {
		t.Errorf("exec: code %d out %q err %q", code, out, errOut)
	}
	if last := f.calls[len(f.calls)-1]; last != `ExecSync c1aaaaaaaaaaaaaaaaaaaa ["sh" "-c" "exit 7"] 0` {
		t.Errorf("exec call %s", last)
	}
	_, _, _ = berth(t, ep, "--timeout", "3s", "exec", "web", "true")
	if last := f.calls[len(f.calls)-1]; last != `ExecSync c1aaaaaaaaaaaaaaaaaaaa ["true"] 3` {
		t.Errorf("exec --timeout call %s", last)
	}

	out, _, code = berth(t, ep, "version")
	if code != 0 || !strings.Contains(out, "RuntimeName:         berth\n") {
		t.Errorf("version: code %d\n%s", code, out)
	}
	out, _, code = berth(t, ep, "pods", "-o", "json", "--state", "ready")
	if code != 0 || !strings.Contains(out, `"items": [`) || !strings.Contains(out, `"name": "nginx"`) || strings.Contains(out, "dns") {
		t.Errorf("pods -o json: code %d\n%s", code, out)
	}

	dir := t.TempDir()
	t.Chdir(dir)
	out, errOut, code = berth(t, ep, "image", "import", "img.tar")
	if code != 0 || out != "Imported sha256:1111\nImported sha256:2222\n" || len(f.imported) != 1 || f.imported[0] != filepath.Join(dir, "img.tar") {
		t.Errorf("image import: code %d out %q err %q imported %v", code, out, errOut, f.imported)
	}
}

// TestRun drives `berth run --rm`: pull when absent, pod and container
// made, output streamed from the log file, exit code passed on, all removed.
func TestRun(t *testing.T) {
	runLogRoot = t.TempDir()
	f := &fakeCRI{}
	f.onStart = func(st *runtimeapi.ContainerStatus) {
		appendFile(t, st.GetLogPath(), logText("stdout F hello", "stderr P bad ", "stderr F news", "stdout F bye"))
		time.Sleep(100 * time.Millisecond)
		f.exit(st.GetId(), 3)
	}
	ep := startFake(t, f)
	out, errOut, code := berth(t, ep, "run", "--rm", "--name", "t1", "-e", "A=1", "busybox", "echo", "hello")
	if code != 3 || out != "hello\nbye\n" || errOut != "Pulling busybox ...\nbad news\n" {
		t.Errorf("run: code %d out %q err %q", code, out, errOut)
	}
	pod, ctr := fmt.Sprintf("pod%061d", 0), fmt.Sprintf("ctr%061d", 0)
	want := []string{
		"PullImage busybox",
		"RunPodSandbox t1",
		`CreateContainer t1 busybox ["echo" "hello"]`,
		"StartContainer " + ctr,
		// RemovePodSandbox stops and removes the pod's containers too.
		"RemovePodSandbox " + pod,
	}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	if entries, _ := os.ReadDir(runLogRoot); len(entries) != 0 {
		t.Errorf("log directory left behind: %v", entries)
	}
	if f.statusCalls < 2 {
		t.Errorf("%d ContainerStatus calls: without events the exit must be found by asking", f.statusCalls)
	}
}

// TestRunEvents: with container events the exit and its code come from the
// stopped event; ContainerStatus is asked once, for the log path.
func TestRunEvents(t *testing.T) {
	runLogRoot = t.TempDir()
	f := &fakeCRI{withEvents: true}
	f.onStart = func(st *runtimeapi.ContainerStatus) {
		appendFile(t, st.GetLogPath(), logText("stdout F hello"))
		time.Sleep(50 * time.Millisecond)
		f.exit(st.GetId(), 5)
	}
	ep := startFake(t, f)
	out, errOut, code := berth(t, ep, "run", "--rm", "--name", "t2", "busybox", "true")
	if code != 5 || out != "hello\n" {
		t.Errorf("run: code %d out %q err %q", code, out, errOut)
	}
	if f.statusCalls != 1 {
		t.Errorf("%d ContainerStatus calls, want 1 (the log path): the exit must come from the events", f.statusCalls)
	}
	if last := f.calls[len(f.calls)-1]; !strings.HasPrefix(last, "RemovePodSandbox ") {
		t.Errorf("last call %q, want RemovePodSandbox", last)
	}
}
