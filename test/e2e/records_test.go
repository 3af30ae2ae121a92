package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// editDB runs fn on the record store of a stopped berthd.
func editDB(t *testing.T, d *framework.Daemon, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(d.Root, "berth.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func put(tx *bolt.Tx, bucket, key string, value []byte) error {
	b, err := tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return err
	}
	return b.Put([]byte(key), value)
}

// TestRestartCorruptRecord writes garbage, a record of an unknown schema
// version and a corrupt status of a running container into berth.db of a
// stopped berthd. berthd starts anyway, logs each as an error, sets them
// aside in the quarantine bucket and serves the rest; the container whose
// record it could not read is left running, not reaped as a crash's
// leftover. Putting its record back brings it under management again.
func TestRestartCorruptRecord(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	goodPod := d.PodConfig(t, "intact")
	goodPodID := d.RunPod(t, goodPod)
	good := d.RunContainer(t, goodPodID, goodPod, framework.ContainerConfig("app", "sleep", "3600"))
	hurtPod := d.PodConfig(t, "hurt")
	hurtPodID := d.RunPod(t, hurtPod)
	hurt := d.RunContainer(t, hurtPodID, hurtPod, framework.ContainerConfig("app", "sleep", "3600"))
	d.WaitForState(t, hurt, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	hurtInit := initPIDs(t, hurtPod)
	if len(hurtInit) != 1 {
		t.Fatalf("want one init process in pod %s, got %v", hurtPodID, hurtInit)
	}

	d.Stop(t)
	var hurtStatus []byte
	editDB(t, d, func(tx *bolt.Tx) error {
		hurtStatus = slices.Clone(tx.Bucket([]byte("containers.status")).Get([]byte(hurt)))
		if hurtStatus == nil {
			t.Fatalf("no status record of container %s in containers.status", hurt)
		}
		for _, kv := range [][3]string{
			{"containers.meta", "garbage0", "\x00\x01 not json"},
			{"containers.status", "garbage0", `{"v":1,"d":{"state":"running"}}`},
			{"sandboxes.meta", "future0", `{"v":99,"d":{"createdAt":1}}`},
			{"sandboxes.status", "future0", `{"v":99,"d":{"state":"ready"}}`},
			{"containers.status", hurt, `{"v":1,"d":{"state":`},
		} {
			if err := put(tx, kv[0], kv[1], []byte(kv[2])); err != nil {
				return err
			}
		}
		return nil
	})
	logStart := fileSize(t, d.LogPath)
	d.Restart(t)

	log := readFrom(t, d.LogPath, logStart)
	for _, id := range []string{"garbage0", "future0", hurt} {
		if !slices.ContainsFunc(strings.Split(log, "\n"), func(l string) bool {
			return strings.Contains(l, "level=ERROR") && strings.Contains(l, "record cannot be read") && strings.Contains(l, "id="+id+" ")
		}) {
			t.Errorf("no error logged for the unreadable record %s:\n%s", id, log)
		}
	}
	if got := containerIDs(t, d, nil); !equalIDs(got, []string{good}) {
		t.Errorf("containers after restart: %v, want only %s", got, good)
	}
	if got := podIDs(t, d, nil); !equalIDs(got, sorted(goodPodID, hurtPodID)) {
		t.Errorf("pods after restart: %v, want %v", got, sorted(goodPodID, hurtPodID))
	}
	if st := d.ContainerStatus(t, good); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("intact container after restart: %v, want RUNNING", st.State)
	}
	if got := initPIDs(t, hurtPod); !slices.Equal(got, hurtInit) {
		t.Errorf("container whose record is unreadable: init %v after restart, want it left running as %v", got, hurtInit)
	}

	// The operator's repair: the record back from quarantine, with a good
	// status.
	d.Stop(t)
	editDB(t, d, func(tx *bolt.Tx) error {
		q := tx.Bucket([]byte("quarantine"))
		var entry struct {
			Meta []byte `json:"meta"`
		}
		raw := q.Get([]byte("containers/" + hurt))
		if err := json.Unmarshal(raw, &entry); err != nil || len(entry.Meta) == 0 {
			t.Fatalf("quarantine entry of %s: %v %s", hurt, err, raw)
		}
		for _, key := range []string{"containers/garbage0", "sandboxes/future0"} {
			if q.Get([]byte(key)) == nil {
				t.Errorf("no quarantine entry %s", key)
			}
		}
		if err := put(tx, "containers.meta", hurt, entry.Meta); err != nil {
			return err
		}
		if err := put(tx, "containers.status", hurt, hurtStatus); err != nil {
			return err
		}
		return q.Delete([]byte("containers/" + hurt))
	})
	d.Restart(t)
	if st := d.ContainerStatus(t, hurt); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container put back from quarantine: %v, want RUNNING", st.State)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func readFrom(t *testing.T, path string, offset int64) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data[offset:])
}
