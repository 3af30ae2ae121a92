package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// quarantine holds records that could not be read, one JSON value per
// record under "<table>/<id>", so an operator can inspect them.
const quarantine = "quarantine"

// ErrNoRecord is returned by PutStatus for an id the table does not hold
// (removed meanwhile): a late status write must not bring a record back.
var ErrNoRecord = errors.New("no such record")

// Table is one kind of record in two parts: metadata, written once when the
// object is created and never changed, and a small status, rewritten on
// every state change. Both parts are stored as {"v": <schema version>,
// "d": <JSON>} in buckets "<name>.meta" and "<name>.status", keyed by id.
//
// Records of a berthd from before the split (one unversioned JSON value per
// id in the bucket "<name>") are migrated when they are loaded. A record
// that cannot be decoded, carries a schema version this berthd does not
// know, or fails its owner's check is moved to the quarantine bucket and
// logged; loading goes on without it.
type Table[M, S any] struct {
	st      *Store
	name    string
	version int
	legacy  func(data []byte) (*M, *S, error)
	log     *slog.Logger
}

// TableOptions configures a Table.
type TableOptions[M, S any] struct {
	Name    string // e.g. "containers"
	Version int    // the schema version written; loads accept only it
	// Legacy decodes a record from before records were versioned, stored
	// under the bucket Name. nil: there are none to migrate.
	Legacy func(data []byte) (*M, *S, error)
	Logger *slog.Logger // nil: slog.Default()
}

// Row is one loaded record.
type Row[M, S any] struct {
	ID     string
	Meta   *M
	Status *S
}

// NewTable opens the table, creating its buckets.
func NewTable[M, S any](s *Store, o TableOptions[M, S]) (*Table[M, S], error) {
	if o.Version < 1 {
		return nil, fmt.Errorf("table %s: schema version must be at least 1", o.Name)
	}
	t := &Table[M, S]{st: s, name: o.Name, version: o.Version, legacy: o.Legacy, log: o.Logger}
	if t.log == nil {
		t.log = slog.Default()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{t.metaBucket(), t.statusBucket(), quarantine} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("init %s table: %w", o.Name, err)
	}
	return t, nil
}

func (t *Table[M, S]) metaBucket() string   { return t.name + ".meta" }
func (t *Table[M, S]) statusBucket() string { return t.name + ".status" }

// envelope is how each part is stored: the schema version beside the data.
type envelope struct {
	V int             `json:"v"`
	D json.RawMessage `json:"d"`
}

func (t *Table[M, S]) encode(v any) ([]byte, error) {
	d, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{V: t.version, D: d})
}

func decodePart[T any](version int, data []byte) (*T, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	if e.V != version {
		return nil, fmt.Errorf("schema version %d, this berthd reads version %d", e.V, version)
	}
	v := new(T)
	if err := json.Unmarshal(e.D, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Create writes a new record's metadata and first status in one
// transaction.
func (t *Table[M, S]) Create(id string, m *M, s *S) error {
	md, err := t.encode(m)
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", t.name, id, err)
	}
	sd, err := t.encode(s)
	if err != nil {
		return fmt.Errorf("encode %s status %s: %w", t.name, id, err)
	}
	return t.st.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(t.metaBucket())).Put([]byte(id), md); err != nil {
			return err
		}
		return tx.Bucket([]byte(t.statusBucket())).Put([]byte(id), sd)
	})
}

// PutStatus replaces the status of an existing record; it returns
// ErrNoRecord when there is no record id.
func (t *Table[M, S]) PutStatus(id string, s *S) error {
	sd, err := t.encode(s)
	if err != nil {
		return fmt.Errorf("encode %s status %s: %w", t.name, id, err)
	}
	return t.st.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(t.metaBucket())).Get([]byte(id)) == nil {
			return fmt.Errorf("%s status %s: %w", t.name, id, ErrNoRecord)
		}
		return tx.Bucket([]byte(t.statusBucket())).Put([]byte(id), sd)
	})
}

// Delete removes a record; a missing one is not an error.
func (t *Table[M, S]) Delete(id string) error {
	return t.st.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(t.metaBucket())).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket([]byte(t.statusBucket())).Delete([]byte(id))
	})
}

// QuarantineEntry is a record set aside at load.
type QuarantineEntry struct {
	Table  string    `json:"table"`
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Meta   []byte    `json:"meta,omitempty"`   // as stored (base64 in JSON)
	Status []byte    `json:"status,omitempty"` // as stored
	Value  []byte    `json:"value,omitempty"`  // a record stored as one value (unversioned, or an image), as stored
}

// Load returns every record of the table, in id order. check, when not
// nil, is the owner's look at each record (decoding what it keeps decoded
// in memory); an error from it sets the record aside as an unreadable one
// is. Records from before versioning are rewritten in the current form.
func (t *Table[M, S]) Load(check func(id string, m *M, s *S) error) ([]Row[M, S], error) {
	metas, statuses, legacies := map[string][]byte{}, map[string][]byte{}, map[string][]byte{}
	var ids []string
	err := t.st.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket([]byte(t.metaBucket())).ForEach(func(k, v []byte) error {
			ids = append(ids, string(k))
			metas[string(k)] = append([]byte(nil), v...)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket([]byte(t.statusBucket())).ForEach(func(k, v []byte) error {
			statuses[string(k)] = append([]byte(nil), v...)
			return nil
		})
		if err != nil {
			return err
		}
		if b := tx.Bucket([]byte(t.name)); b != nil {
			return b.ForEach(func(k, v []byte) error {
				if v != nil {
					legacies[string(k)] = append([]byte(nil), v...)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s records: %w", t.name, err)
	}

	var rows, migrated []Row[M, S]
	var bad []QuarantineEntry
	setAside := func(id, reason string) {
		bad = append(bad, QuarantineEntry{Table: t.name, ID: id, Reason: reason, At: time.Now().UTC(),
			Meta: metas[id], Status: statuses[id], Value: legacies[id]})
	}
	for _, id := range ids {
		m, err := decodePart[M](t.version, metas[id])
		if err != nil {
			setAside(id, "metadata: "+err.Error())
			continue
		}
		sd, ok := statuses[id]
		if !ok {
			setAside(id, "no status")
			continue
		}
		s, err := decodePart[S](t.version, sd)
		if err != nil {
			setAside(id, "status: "+err.Error())
			continue
		}
		if check != nil {
			if err := check(id, m, s); err != nil {
				setAside(id, err.Error())
				continue
			}
		}
		rows = append(rows, Row[M, S]{ID: id, Meta: m, Status: s})
	}
	for id := range statuses {
		if _, ok := metas[id]; !ok {
			setAside(id, "status without metadata")
		}
	}
	for id, data := range legacies {
		if _, ok := metas[id]; ok {
			// Migrated already; a crash came before the old one was deleted.
			migrated = append(migrated, Row[M, S]{ID: id})
			continue
		}
		if t.legacy == nil {
			setAside(id, "unversioned record and no migration for it")
			continue
		}
		m, s, err := t.legacy(data)
		if err == nil && check != nil {
			err = check(id, m, s)
		}
		if err != nil {
			setAside(id, "unversioned record: "+err.Error())
			continue
		}
		r := Row[M, S]{ID: id, Meta: m, Status: s}
		rows = append(rows, r)
		migrated = append(migrated, r)
	}
	if len(bad) > 0 || len(migrated) > 0 {
		if err := t.rewrite(bad, migrated); err != nil {
			return nil, err
		}
	}
	for _, q := range bad {
		t.log.Error("record cannot be read; set aside in the quarantine bucket, the object it describes is not managed",
			"table", t.name, "id", q.ID, "reason", q.Reason, "key", quarantine+"/"+t.name+"/"+q.ID)
	}
	if n := len(migrated); n > 0 {
		t.log.Info("migrated unversioned records", "table", t.name, "count", n, "version", t.version)
	}
	if len(legacies) > 0 {
		slices.SortFunc(rows, func(a, b Row[M, S]) int { return strings.Compare(a.ID, b.ID) })
	}
	return rows, nil
}

// rewrite moves bad records to quarantine and writes migrated ones in the
// current form, in one transaction.
func (t *Table[M, S]) rewrite(bad []QuarantineEntry, migrated []Row[M, S]) error {
	err := t.st.db.Update(func(tx *bolt.Tx) error {
		meta, status, q := tx.Bucket([]byte(t.metaBucket())), tx.Bucket([]byte(t.statusBucket())), tx.Bucket([]byte(quarantine))
		legacy := tx.Bucket([]byte(t.name))
		for _, r := range bad {
			data, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := q.Put([]byte(t.name+"/"+r.ID), data); err != nil {
				return err
			}
			if err := meta.Delete([]byte(r.ID)); err != nil {
				return err
			}
			if err := status.Delete([]byte(r.ID)); err != nil {
				return err
			}
			if legacy != nil {
				if err := legacy.Delete([]byte(r.ID)); err != nil {
					return err
				}
			}
		}
		for _, r := range migrated {
			if r.Meta != nil {
				md, err := t.encode(r.Meta)
				if err != nil {
					return err
				}
				sd, err := t.encode(r.Status)
				if err != nil {
					return err
				}
				if err := meta.Put([]byte(r.ID), md); err != nil {
					return err
				}
				if err := status.Put([]byte(r.ID), sd); err != nil {
					return err
				}
			}
			if err := legacy.Delete([]byte(r.ID)); err != nil {
				return err
			}
		}
		if legacy != nil {
			if k, _ := legacy.Cursor().First(); k == nil {
				return tx.DeleteBucket([]byte(t.name))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set aside or migrate %s records: %w", t.name, err)
	}
	return nil
}

// QuarantinedIDs lists the ids of this table's records in quarantine: the
// objects they describe may still exist on the host, and are left alone.
func (t *Table[M, S]) QuarantinedIDs() (map[string]bool, error) {
	ids := map[string]bool{}
	prefix := []byte(t.name + "/")
	err := t.st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(quarantine)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids[string(k[len(prefix):])] = true
		}
		return nil
	})
	return ids, err
}

// LegacyFlat decodes a record from before the split that held metadata and
// status fields side by side in one JSON object, as TableOptions.Legacy.
func LegacyFlat[M, S any](data []byte) (*M, *S, error) {
	m, s := new(M), new(S)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, nil, err
	}
	return m, s, nil
}
