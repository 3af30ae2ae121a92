package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

type meta struct {
	Name string `json:"name"`
}

type status struct {
	State string `json:"state"`
}

func openTestTable(t *testing.T, path string, log *bytes.Buffer) (*Store, *Table[meta, status]) {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tab, err := NewTable(s, TableOptions[meta, status]{
		Name: "things", Version: 2, Logger: slog.New(slog.NewTextHandler(log, nil)),
		Legacy: func(data []byte) (*meta, *status, error) {
			var v struct {
				Name  string `json:"name"`
				State string `json:"state"`
			}
			if err := json.Unmarshal(data, &v); err != nil {
				return nil, nil, err
			}
			return &meta{v.Name}, &status{v.State}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, tab
}

func putRaw(t *testing.T, s *Store, bucket, key, value string) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getRaw(s *Store, bucket, key string) []byte {
	var out []byte
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			out = append([]byte(nil), b.Get([]byte(key))...)
		}
		return nil
	})
	return out
}

func TestTableCreateStatusDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	var log bytes.Buffer
	s, tab := openTestTable(t, path, &log)
	if err := tab.Create("a", &meta{"a"}, &status{"created"}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Create("b", &meta{"b"}, &status{"created"}); err != nil {
		t.Fatal(err)
	}
	metaBefore := getRaw(s, "things.meta", "a")
	if err := tab.PutStatus("a", &status{"running"}); err != nil {
		t.Fatal(err)
	}
	// A status write leaves the metadata as it was written.
	if got := getRaw(s, "things.meta", "a"); !bytes.Equal(got, metaBefore) {
		t.Errorf("metadata changed by a status write: %s -> %s", metaBefore, got)
	}
	if got := string(getRaw(s, "things.status", "a")); got != `{"v":2,"d":{"state":"running"}}` {
		t.Errorf("stored status %s", got)
	}
	if err := tab.Delete("b"); err != nil {
		t.Fatal(err)
	}
	// A late status write does not bring a removed record back.
	if err := tab.PutStatus("b", &status{"exited"}); !errors.Is(err, ErrNoRecord) {
		t.Errorf("PutStatus of a removed record: %v, want ErrNoRecord", err)
	}
	if err := tab.Delete("missing"); err != nil {
		t.Errorf("Delete of a missing record: %v", err)
	}
	s.Close()

	s, tab = openTestTable(t, path, &log)
	rows, err := tab.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ID != "a" || rows[0].Meta.Name != "a" || rows[0].Status.State != "running" {
		t.Fatalf("after reopen: %+v", rows)
	}
	if log.Len() != 0 {
		t.Errorf("clean load logged: %s", log.String())
	}
}

// Records of a berthd from before versioning are read and rewritten in the
// current form; the old bucket goes once empty.
func TestTableMigratesUnversioned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	var log bytes.Buffer
	s, tab := openTestTable(t, path, &log)
	putRaw(t, s, "things", "old1", `{"name":"old1","state":"running","extra":1}`)
	putRaw(t, s, "things", "old2", `{"name":"old2","state":"exited"}`)
	if err := tab.Create("new", &meta{"new"}, &status{"created"}); err != nil {
		t.Fatal(err)
	}
	rows, err := tab.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.ID+"="+r.Meta.Name+"/"+r.Status.State)
	}
	if strings.Join(got, " ") != "new=new/created old1=old1/running old2=old2/exited" {
		t.Fatalf("loaded %v", got)
	}
	if string(getRaw(s, "things.meta", "old1")) != `{"v":2,"d":{"name":"old1"}}` {
		t.Errorf("migrated metadata %s", getRaw(s, "things.meta", "old1"))
	}
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("things")) != nil {
			t.Errorf("the unversioned bucket is still there after migration")
		}
		return nil
	})
	if !strings.Contains(log.String(), "migrated unversioned records") {
		t.Errorf("migration not logged: %s", log.String())
	}
	s.Close()
	_, tab = openTestTable(t, path, &log)
	if rows, err := tab.Load(nil); err != nil || len(rows) != 3 {
		t.Fatalf("reload after migration: %v %+v", err, rows)
	}
}

// Unreadable records are set aside, logged and listed; the rest load.
func TestTableSetsAsideBadRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	var log bytes.Buffer
	s, tab := openTestTable(t, path, &log)
	if err := tab.Create("good", &meta{"good"}, &status{"running"}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Create("refused", &meta{"refused"}, &status{"running"}); err != nil {
		t.Fatal(err)
	}
	putRaw(t, s, "things.meta", "garbage", "\x00\xffnot json")
	putRaw(t, s, "things.status", "garbage", `{"v":2,"d":{"state":"running"}}`)
	putRaw(t, s, "things.meta", "future", `{"v":3,"d":{"name":"future"}}`)
	putRaw(t, s, "things.status", "future", `{"v":3,"d":{"state":"running"}}`)
	putRaw(t, s, "things.meta", "nostatus", `{"v":2,"d":{"name":"nostatus"}}`)
	putRaw(t, s, "things.status", "badstatus", `{"v":2,"d":{"state":7}}`)
	putRaw(t, s, "things.meta", "badstatus", `{"v":2,"d":{"name":"badstatus"}}`)
	putRaw(t, s, "things.status", "nometa", `{"v":2,"d":{"state":"running"}}`)
	putRaw(t, s, "things", "oldgarbage", `{"name":`)

	rows, err := tab.Load(func(id string, m *meta, st *status) error {
		if id == "refused" {
			return errors.New("config does not decode")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Load with bad records: %v, want them set aside", err)
	}
	if len(rows) != 1 || rows[0].ID != "good" {
		t.Fatalf("loaded %+v, want only good", rows)
	}
	bad := []string{"badstatus", "future", "garbage", "nometa", "nostatus", "oldgarbage", "refused"}
	ids, err := tab.QuarantinedIDs()
	if err != nil || len(ids) != len(bad) {
		t.Fatalf("quarantined %v %v, want %v", ids, err, bad)
	}
	for _, id := range bad {
		if !ids[id] {
			t.Errorf("%s not in quarantine", id)
		}
		if !strings.Contains(log.String(), "id="+id) {
			t.Errorf("%s set aside without an error logged", id)
		}
		if getRaw(s, "things.meta", id) != nil || getRaw(s, "things.status", id) != nil {
			t.Errorf("%s still in the table", id)
		}
	}
	var q QuarantineEntry
	if err := json.Unmarshal(getRaw(s, quarantine, "things/future"), &q); err != nil ||
		!strings.Contains(q.Reason, "schema version 3") || string(q.Meta) != `{"v":3,"d":{"name":"future"}}` {
		t.Errorf("quarantine entry of the unknown version: %v %+v", err, q)
	}
	if err := json.Unmarshal(getRaw(s, quarantine, "things/refused"), &q); err != nil || q.Reason != "config does not decode" {
		t.Errorf("quarantine entry of the refused record: %v %+v", err, q)
	}
	if !strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("not logged as errors: %s", log.String())
	}

	// The next load is clean, and the table works on.
	log.Reset()
	if rows, err := tab.Load(nil); err != nil || len(rows) != 1 || log.Len() != 0 {
		t.Fatalf("second load: %v %+v %s", err, rows, log.String())
	}
	if err := tab.Create("garbage", &meta{"again"}, &status{"created"}); err != nil {
		t.Fatal(err)
	}
}
