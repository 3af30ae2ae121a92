package container

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/store"
)

func testContainer() *Container {
	c := &Container{
		ID: "c1", PodID: "p1", CreatedAt: 10, ImageID: "sha256:i", ImageRef: "sha256:r", Layers: []string{"sha256:l"},
		LogPath: "/logs/app.log", Runtime: "runc", CgroupsPath: "/berth/c1", StopSignal: "SIGQUIT",
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			Labels:   map[string]string{"l": "1"}, Annotations: map[string]string{"a": "1"},
			Mounts: []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/srv"}},
		},
		User:  &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 1000, Gid: 1000}},
		State: Exited, StartedAt: 11, FinishedAt: 12, ExitCode: 3, Reason: ReasonError, Message: "m", Pid: 42,
		Resources:      &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20},
		RuntimeDeleted: true,
	}
	c.fillFromConfig()
	return c
}

// sameContainer compares two records field by field, protos by value.
func sameContainer(t *testing.T, got, want *Container) {
	t.Helper()
	if !proto.Equal(got.Config, want.Config) || !proto.Equal(got.User, want.User) || !proto.Equal(got.Resources, want.Resources) {
		t.Errorf("CRI blobs differ: %v %v %v, want %v %v %v", got.Config, got.User, got.Resources, want.Config, want.User, want.Resources)
	}
	g, w := *got, *want
	g.Config, g.User, g.Resources, g.exec = nil, nil, nil, nil
	w.Config, w.User, w.Resources, w.exec = nil, nil, nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("record\n got %+v\nwant %+v", g, w)
	}
}

// Every field survives the store: it is in the metadata, in the status,
// or taken from the CRI config. A field added to Container without a home
// in the records shows up here as zero.
func TestRecordRoundTrip(t *testing.T) {
	c := testContainer()
	v := reflect.ValueOf(*c)
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() && v.Field(i).IsZero() {
			t.Fatalf("test record leaves %s zero; set it", f.Name)
		}
	}
	m, err := c.meta()
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromRecord(c.ID, m, st)
	if err != nil {
		t.Fatal(err)
	}
	sameContainer(t, got, c)
}

func TestRecordRefusesBadBlobs(t *testing.T) {
	c := testContainer()
	m, _ := c.meta()
	st, _ := c.status()
	bad := *m
	bad.Config = []byte(`{"metadata": 7}`)
	if _, err := fromRecord("c1", &bad, st); err == nil {
		t.Errorf("a config that does not decode was accepted")
	}
	badSt := *st
	badSt.State = "paused"
	if _, err := fromRecord("c1", m, &badSt); err == nil {
		t.Errorf("an unknown state was accepted")
	}
	// A field a newer CRI API added is no reason to lose the container.
	newer := *m
	newer.Config = []byte(`{"metadata":{"name":"app"},"fieldFromTheFuture":1}`)
	if _, err := fromRecord("c1", &newer, st); err != nil {
		t.Errorf("unknown CRI field: %v", err)
	}
}

// legacyRecord is a container record as berthd wrote it before records
// were versioned: one JSON value with copies of the config's fields.
const legacyRecord = `{"id":"c1","podID":"p1","key":"p1_app_2","name":"app","attempt":2,"state":"exited",
"createdAt":10,"startedAt":11,"finishedAt":12,"exitCode":3,"reason":"Error","message":"m","pid":42,
"image":"busybox","imageID":"sha256:i","imageRef":"sha256:r","layers":["sha256:l"],"labels":{"l":"1"},
"annotations":{"a":"1"},"logPath":"/logs/app.log","runtime":"runc","cgroupsPath":"/berth/c1","stopSignal":"SIGQUIT",
"user":{"linux":{"uid":"1000","gid":"1000"}},
"config":{"metadata":{"name":"app","attempt":2},"image":{"image":"busybox"},"mounts":[{"containerPath":"/data","hostPath":"/srv"}],"labels":{"l":"1"},"annotations":{"a":"1"}},
"resources":{"memoryLimitInBytes":"1048576"}}`

// A berth.db of an older berthd loads, and is rewritten in the current form.
func TestRecordMigratesLegacy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := store.PutRaw(st, "containers", "c1", []byte(legacyRecord)); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	tab, err := openTable(st, Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var got *Container
	rows, err := tab.Load(func(id string, m *recordMeta, s *recordStatus) error {
		got, err = fromRecord(id, m, s)
		return err
	})
	if err != nil || len(rows) != 1 || got == nil {
		t.Fatalf("load of a legacy record: %v %+v\n%s", err, rows, log.String())
	}
	want := testContainer()
	want.RuntimeDeleted = false // older records predate it: removal deletes once more
	sameContainer(t, got, want)
	if rows, err := tab.Load(nil); err != nil || len(rows) != 1 || rows[0].Meta.Runtime != "runc" {
		t.Fatalf("reload after migration: %v %+v", err, rows)
	}
}

// The exec template comes from the spec at create, else from the bundle
// once; execs never re-read it.
func TestExecTemplate(t *testing.T) {
	tmpl := newExecTemplate(&specs.Spec{Process: &specs.Process{Args: []string{"sleep"}, Cwd: "/w"}})
	p, err := tmpl.process("/nonexistent")
	if err != nil || p.Cwd != "/w" {
		t.Fatalf("template from the spec: %v %+v", err, p)
	}

	bundle := t.TempDir()
	loaded := &execTemplate{}
	if _, err := loaded.process(bundle); err == nil {
		t.Fatalf("no config.json: want an error")
	}
	if err := writeSpec(filepath.Join(bundle, "config.json"), &specs.Spec{Process: &specs.Process{Cwd: "/x", Env: []string{"A=1"}}}); err != nil {
		t.Fatal(err)
	}
	p, err = loaded.process(bundle)
	if err != nil || p.Cwd != "/x" {
		t.Fatalf("template from the bundle: %v %+v", err, p)
	}
	if err := os.Remove(filepath.Join(bundle, "config.json")); err != nil {
		t.Fatal(err)
	}
	if p, err := loaded.process(bundle); err != nil || p.Cwd != "/x" {
		t.Fatalf("template read again: %v %+v", err, p)
	}
}
