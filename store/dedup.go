package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Deduplication caches of durable queues and exchanges (the x-message-deduplication argument)
// keep one record per id they hold, so a publisher's retry after a restart is still recognised.
// The store does not interpret ids: they are the caller's bytes.

// Owner kinds of a deduplication cache.
const (
	DedupQueue    byte = 'q'
	DedupExchange byte = 'x'
)

// DedupCache names the cache of one queue or exchange.
type DedupCache struct {
	Vhost string
	Kind  byte // DedupQueue or DedupExchange
	Name  string
}

// DedupEntry is one id a cache holds: Order is the caller's recency counter (higher is more
// recent), Expires the unix ms after which the id no longer counts, 0 for never.
type DedupEntry struct {
	ID      []byte
	Order   uint64
	Expires int64
}

// dedupVersion is the first byte of every 'D' value.
const dedupVersion = 1

// dedupPrefix is 'D' vhost kind name: every record of one cache.
func dedupPrefix(c DedupCache) ([]byte, error) {
	k := make([]byte, 0, 4+len(c.Vhost)+len(c.Name))
	k = append(k, tagDedup)
	k, err := appendName(k, c.Vhost)
	if err != nil {
		return nil, err
	}
	k = append(k, c.Kind)
	return appendName(k, c.Name)
}

// dedupKey is 'D' vhost kind name id.
func dedupKey(c DedupCache, id []byte) ([]byte, error) {
	k, err := dedupPrefix(c)
	if err != nil {
		return nil, err
	}
	return append(k, id...), nil
}

func encodeDedup(e DedupEntry) []byte {
	v := make([]byte, 0, 17)
	v = append(v, dedupVersion)
	v = binary.BigEndian.AppendUint64(v, e.Order)
	return binary.BigEndian.AppendUint64(v, uint64(e.Expires))
}

func decodeDedup(v []byte, e *DedupEntry) error {
	if len(v) != 17 || v[0] != dedupVersion {
		return fmt.Errorf("%w: deduplication record of %d bytes, version %d", ErrCorrupt, len(v), firstByte(v))
	}
	e.Order = binary.BigEndian.Uint64(v[1:9])
	e.Expires = int64(binary.BigEndian.Uint64(v[9:]))
	return nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// PutDedup stores (or replaces) an id of c without waiting: the write is ordered before every
// write submitted after it, so a message written after its id never survives a crash that
// its id does not. A failed write is logged.
func (s *Store) PutDedup(c DedupCache, e DedupEntry) {
	k, err := dedupKey(c, e.ID)
	if err != nil {
		s.log.Error().Err(err).Str("vhost", c.Vhost).Str("name", c.Name).Msg("deduplication id not persisted")
		return
	}
	s.submit(op{kind: opSet, key: k, val: encodeDedup(e), done: s.logDedupFailure(c, "deduplication id not persisted")})
}

// DeleteDedup deletes an id of c (evicted or expired) without waiting.
func (s *Store) DeleteDedup(c DedupCache, id []byte) {
	k, err := dedupKey(c, id)
	if err != nil {
		return // PutDedup refused the same key
	}
	s.submit(op{kind: opDel, key: k, done: s.logDedupFailure(c, "deduplication id not deleted")})
}

func (s *Store) logDedupFailure(c DedupCache, msg string) func(error) {
	return func(err error) {
		if err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error().Err(err).Str("vhost", c.Vhost).Str("name", c.Name).Msg(msg)
		}
	}
}

// DropDedup deletes every id of c and waits until the deletes are committed: the cache of a
// deleted queue or exchange, before one of the same name can be declared.
func (s *Store) DropDedup(c DedupCache) error {
	p, err := dedupPrefix(c)
	if err != nil {
		return err
	}
	var keys [][]byte
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = p
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reading the deduplication cache of '%s' in vhost '%s': %w", c.Name, c.Vhost, err)
	}
	for _, k := range keys {
		s.submit(op{kind: opDel, key: k})
	}
	if err := s.Flush(); err != nil {
		return fmt.Errorf("store: dropping the deduplication cache of '%s' in vhost '%s': %w", c.Name, c.Vhost, err)
	}
	return nil
}

// DedupEntries returns the ids c holds, in key order.
func (s *Store) DedupEntries(c DedupCache) ([]DedupEntry, error) {
	p, err := dedupPrefix(c)
	if err != nil {
		return nil, err
	}
	var out []DedupEntry
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = p
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			e := DedupEntry{ID: append([]byte(nil), item.Key()[len(p):]...)}
			if err := item.Value(func(v []byte) error { return decodeDedup(v, &e) }); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading the deduplication cache of '%s' in vhost '%s': %w", c.Name, c.Vhost, err)
	}
	return out, nil
}
