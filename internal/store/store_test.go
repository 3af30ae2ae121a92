package store

import (
	"path/filepath"
	"strings"
	"testing"
)

type rec struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestPutGetDeleteLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Images, "a", rec{"a", 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Images, "b", rec{"b", 2}); err != nil {
		t.Fatal(err)
	}
	var got rec
	if ok, err := s.Get(Images, "a", &got); !ok || err != nil || got != (rec{"a", 1}) {
		t.Fatalf("Get a = %v, %v, %v", got, ok, err)
	}
	if ok, err := s.Get(quarantine, "a", &got); ok || err != nil {
		t.Fatalf("record leaked across buckets: %v, %v", ok, err)
	}
	if err := s.Delete(Images, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(Images, "missing"); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	// Records survive a close and reopen, as they must across restarts.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var loaded []rec
	if err := Load(s, Images, func(id string, r *rec) error { loaded = append(loaded, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0] != (rec{"b", 2}) {
		t.Fatalf("after reopen: %v, want only b", loaded)
	}
}

func TestSecondOpenSaysLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second Open in the
	// same process contends like another berthd would.
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "another berthd") {
		t.Fatalf("second Open: %v, want an error naming another berthd", err)
	}
}

func TestLoadSetsAsideCorruptRecord(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(Images, "x", "not an object"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Images, "y", rec{"y", 1}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := Load(s, Images, func(id string, r *rec) error { got = append(got, id); return nil }); err != nil {
		t.Fatalf("Load with a corrupt record: %v, want it set aside", err)
	}
	if len(got) != 1 || got[0] != "y" {
		t.Fatalf("loaded %v, want only y", got)
	}
	var q QuarantineEntry
	if ok, err := s.Get(quarantine, "images/x", &q); !ok || err != nil || q.ID != "x" || string(q.Value) != `"not an object"` || q.Reason == "" {
		t.Fatalf("quarantine entry: %v %v %+v", ok, err, q)
	}
	if ok, _ := s.Get(Images, "x", new(any)); ok {
		t.Fatalf("corrupt record still in the images bucket")
	}
}
