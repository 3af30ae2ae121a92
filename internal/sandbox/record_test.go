package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/store"
)

func testPod() *Sandbox {
	p := &Sandbox{
		ID: "p1", CreatedAt: 10, RuntimeHandler: "runc", CgroupParent: "/berth", BoundedFiles: true,
		IP: "10.0.0.2", AdditionalIPs: []string{"fd00::2"},
		Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Uid: "u1", Namespace: "ns", Attempt: 1},
			Hostname: "web", LogDirectory: "/logs/web",
			Labels: map[string]string{"l": "1"}, Annotations: map[string]string{"a": "1"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE},
			}},
		},
		State: Ready, Namespaces: map[string]string{"net": "/run/berth/sandboxes/p1/netns"},
		Resources: &runtimeapi.UpdatePodSandboxResourcesRequest{
			Overhead:  &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20},
			Resources: &runtimeapi.LinuxContainerResources{CpuQuota: 50000, CpuPeriod: 100000},
		},
	}
	p.fillFromConfig()
	return p
}

func samePod(t *testing.T, got, want *Sandbox) {
	t.Helper()
	if !proto.Equal(got.Config, want.Config) {
		t.Errorf("config %v, want %v", got.Config, want.Config)
	}
	if !proto.Equal(got.Resources, want.Resources) {
		t.Errorf("resources %v, want %v", got.Resources, want.Resources)
	}
	g, w := *got, *want
	g.Config, w.Config = nil, nil
	g.Resources, w.Resources = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("record\n got %+v\nwant %+v", g, w)
	}
}

// Every field survives the store (in the metadata, the status, or taken
// from the CRI config).
func TestRecordRoundTrip(t *testing.T) {
	p := testPod()
	v := reflect.ValueOf(*p)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test record leaves %s zero; set it", v.Type().Field(i).Name)
		}
	}
	m, err := p.meta()
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.status()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromRecord(p.ID, m, st)
	if err != nil {
		t.Fatal(err)
	}
	samePod(t, got, p)
}

const legacyPod = `{"id":"p1","key":"web_ns_u1_1","name":"web","uid":"u1","namespace":"ns","attempt":1,"state":"ready",
"createdAt":10,"labels":{"l":"1"},"annotations":{"a":"1"},"runtimeHandler":"runc","hostname":"web",
"logDirectory":"/logs/web","cgroupParent":"/berth","namespaces":{"net":"/run/berth/sandboxes/p1/netns"},
"hostNetwork":true,"hostIPC":true,"hostPID":true,"pidMode":"NODE","boundedFiles":true,"ip":"10.0.0.2",
"additionalIPs":["fd00::2"],"config":{"metadata":{"name":"web","uid":"u1","namespace":"ns","attempt":1},
"hostname":"web","logDirectory":"/logs/web","labels":{"l":"1"},"annotations":{"a":"1"},
"linux":{"securityContext":{"namespaceOptions":{"network":"NODE","pid":"NODE","ipc":"NODE"}}}}}`

// At start, pods of an older berthd load; a pod whose record cannot be
// read is set aside, and its dir is left alone rather than removed as a
// crash's leftover.
func TestRecoverLegacyAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := store.PutRaw(st, "sandboxes", "p1", []byte(legacyPod)); err != nil {
		t.Fatal(err)
	}
	if err := store.PutRaw(st, "sandboxes.meta", "bad", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	badDir := filepath.Join(stateDir, "sandboxes", "bad")
	if err := os.MkdirAll(badDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, StateDir: stateDir, Runtimes: noRuntimes{}})
	if err != nil {
		t.Fatalf("start with a corrupt record: %v", err)
	}
	got, err := s.Get("p1")
	if err != nil {
		t.Fatal(err)
	}
	want := testPod()
	// The pinned netns is not there: the pod is marked not ready.
	want.State, want.Namespaces = NotReady, nil
	want.Resources = nil // legacy records predate them
	samePod(t, got, want)
	if _, err := s.Get("bad"); err == nil || !s.Quarantined("bad") {
		t.Errorf("corrupt record: listed %v, quarantined %v", err == nil, s.Quarantined("bad"))
	}
	if _, err := os.Stat(badDir); err != nil {
		t.Errorf("the dir of the pod whose record is unreadable was removed: %v", err)
	}
}

// noRuntimes knows no runtime handler: the pods here have none to ask.
type noRuntimes struct{}

func (noRuntimes) Handler(name string) (runtime.Handler, error) {
	return nil, errdefs.Invalid("no runtime handler " + name)
}
