package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Access records are the vhosts, users, permissions, topic permissions and policies made
// through the management API. The store does not interpret them: each is a kind byte, a key
// of names and an opaque value (the server's JSON), written through the writer like other
// definitions, so a call returns once the record is committed and synced.

// AccessRecord is one stored access record.
type AccessRecord struct {
	Kind byte     // the caller's record kind, e.g. 'u' for a user
	Key  []string // the names that identify it, e.g. vhost and user
	Val  []byte
}

// accessKey is 'A' kind name...: each name length-prefixed.
func accessKey(kind byte, key []string) ([]byte, error) {
	k := []byte{tagAccess, kind}
	var err error
	for _, s := range key {
		if k, err = appendName(k, s); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func parseAccessKey(k []byte) (byte, []string, error) {
	if len(k) < 2 || k[0] != tagAccess {
		return 0, nil, badKey(k)
	}
	kind, rest := k[1], k[2:]
	var names []string
	for len(rest) > 0 {
		s, r, ok := readName(rest)
		if !ok {
			return 0, nil, badKey(k)
		}
		names, rest = append(names, s), r
	}
	return kind, names, nil
}

// PutAccess stores (or replaces) an access record.
func (s *Store) PutAccess(r AccessRecord) error {
	k, err := accessKey(r.Kind, r.Key)
	if err != nil {
		return err
	}
	return s.syncWrite(op{kind: opSet, key: k, val: r.Val})
}

// DeleteAccess deletes an access record (a missing one is not an error).
func (s *Store) DeleteAccess(kind byte, key ...string) error {
	k, err := accessKey(kind, key)
	if err != nil {
		return err
	}
	return s.syncWrite(op{kind: opDel, key: k})
}

// AccessRecords returns every stored access record in key order.
func (s *Store) AccessRecords() ([]AccessRecord, error) {
	var out []AccessRecord
	err := s.db.View(func(txn *badger.Txn) error {
		return iterate(txn, tagAccess, badger.DefaultIteratorOptions, func(item *badger.Item) error {
			kind, key, err := parseAccessKey(item.Key())
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, AccessRecord{Kind: kind, Key: key, Val: v})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading access records: %w", err)
	}
	return out, nil
}
