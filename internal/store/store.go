// Package store keeps berth's persistent records (sandboxes, containers,
// images) in one bbolt file, so that a restart of berthd loses nothing.
// Sandboxes and containers are typed tables (table.go): versioned metadata
// written once plus a small status. Images are plain JSON values per id
// (Put, Get, Load). Callers own their record types and keep in-memory
// indexes for the hot list paths, writing through to the store. A record
// that cannot be read is set aside in a quarantine bucket and logged, never
// fatal to a load.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names one kind of record.
type Bucket string

// Images is the bucket of image records.
const Images Bucket = "images"

var buckets = []Bucket{Images, quarantine}

// Store is the bbolt-backed record store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (or creates) the store at path. A short lock timeout makes a
// second daemon on the same root fail fast instead of hanging.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("record store %s is locked by another process (is another berthd running on this root dir?)", path)
		}
		return nil, fmt.Errorf("open record store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init record store: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the underlying database.
func (s *Store) Close() error { return s.db.Close() }

// Put writes v as JSON under id, replacing any earlier value.
func (s *Store) Put(b Bucket, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", b, id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(b)).Put([]byte(id), data)
	})
}

// Get reads the record id into v. It reports whether the record exists.
func (s *Store) Get(b Bucket, id string, v any) (bool, error) {
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if d := tx.Bucket([]byte(b)).Get([]byte(id)); d != nil {
			data = append([]byte(nil), d...)
		}
		return nil
	})
	if err != nil || data == nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s record %s: %w", b, id, err)
	}
	return true, nil
}

// Delete removes the record id; a missing record is not an error.
func (s *Store) Delete(b Bucket, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(b)).Delete([]byte(id))
	})
}

// ForEach calls fn with every record of bucket b. The data slice is only
// valid during the call.
func (s *Store) ForEach(b Bucket, fn func(id string, data []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(b)).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
}

// Load decodes every record of bucket b into a fresh T and calls fn. A
// record that does not decode is moved to the quarantine bucket and logged.
func Load[T any](s *Store, b Bucket, fn func(id string, v *T) error) error {
	var bad []QuarantineEntry
	err := s.ForEach(b, func(id string, data []byte) error {
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			bad = append(bad, QuarantineEntry{Table: string(b), ID: id, Reason: err.Error(), At: time.Now().UTC(), Value: append([]byte(nil), data...)})
			return nil
		}
		return fn(id, v)
	})
	if err != nil || len(bad) == 0 {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, q := range bad {
			data, err := json.Marshal(q)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte(quarantine)).Put([]byte(q.Table+"/"+q.ID), data); err != nil {
				return err
			}
			if err := tx.Bucket([]byte(b)).Delete([]byte(q.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set aside unreadable %s records: %w", b, err)
	}
	for _, q := range bad {
		slog.Error("record cannot be read; set aside in the quarantine bucket", "table", q.Table, "id", q.ID,
			"reason", q.Reason, "key", quarantine+"/"+q.Table+"/"+q.ID)
	}
	return nil
}

// PutRaw stores data as is under key in bucket, creating the bucket: for
// tests that need records as another berthd version wrote them.
func PutRaw(s *Store, bucket, key string, data []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), data)
	})
}
