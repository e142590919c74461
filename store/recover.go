package store

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

type recovery struct {
	maxSharedID uint64
	orphans     []uint64 // queue IDs with records but no 'Q' record, dropped in the background
	transient   int
	took        time.Duration
}

// recover rebuilds the writer's in-memory state from keys (values are read only for 'Q'
// records and ref records, both small and stored in the LSM, never the value log):
//   - refcounts of shared bodies, from the ref 'M' records;
//   - the set of 'R' keys;
//   - the highest message ID, to seed NewMessageID.
//
// It deletes transient 'M' records (paged-out messages must not outlive the process), ref
// records whose body is missing, 'R' records whose message is gone, and bodies no record
// refers to. Records of deleted queues are left to background drops (rec.orphans).
func (s *Store) recover() (recovery, error) {
	start := time.Now()
	var rec recovery
	w := &s.w
	live := map[uint64]bool{} // queue IDs with a 'Q' record
	orphans := map[uint64]bool{}
	dangling := map[Ref]bool{} // ref records deleted here because their body is missing
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	keysOnly := badger.DefaultIteratorOptions
	keysOnly.PrefetchValues = false

	err := s.db.View(func(txn *badger.Txn) error {
		err := iterate(txn, tagQueue, badger.DefaultIteratorOptions, func(item *badger.Item) error {
			var q Queue
			if err := item.Value(func(v []byte) error { return decodeQueue(v, &q) }); err != nil {
				return err
			}
			live[q.ID] = true
			return nil
		})
		if err != nil {
			return err
		}
		err = iterate(txn, tagShared, keysOnly, func(item *badger.Item) error {
			id, err := parseSharedKey(item.Key())
			if err != nil {
				return err
			}
			w.refs[id] = shared{}
			rec.maxSharedID = max(rec.maxSharedID, id)
			return nil
		})
		if err != nil {
			return err
		}
		err = iterate(txn, tagMessage, keysOnly, func(item *badger.Item) error {
			q, seq, err := parseSeqKey(tagMessage, item.Key())
			if err != nil {
				return err
			}
			meta := item.UserMeta()
			if meta&metaTransient != 0 {
				rec.transient++
				return wb.Delete(item.KeyCopy(nil))
			}
			if !live[baseQueueID(q)] {
				orphans[q] = true
			}
			if meta&metaRef == 0 {
				return nil
			}
			var id uint64
			var size uint32
			if err := item.Value(func(v []byte) error {
				id, size, err = decodeRef(v)
				return err
			}); err != nil {
				return err
			}
			sh, ok := w.refs[id]
			if !ok {
				s.log.Warn().Uint64("queue_id", q).Uint64("seq", seq).Uint64("msg_id", id).
					Msg("store: deleting a message whose shared body is missing")
				dangling[Ref{q, seq}] = true
				return wb.Delete(item.KeyCopy(nil))
			}
			sh.refs++
			sh.size = size
			w.refs[id] = sh
			return nil
		})
		if err != nil {
			return err
		}
		return iterate(txn, tagDeliveries, keysOnly, func(item *badger.Item) error {
			q, seq, err := parseSeqKey(tagDeliveries, item.Key())
			if err != nil {
				return err
			}
			if !live[baseQueueID(q)] {
				orphans[q] = true
				return nil
			}
			// Keep the marker if its message stays: this view still shows the records
			// deleted above, so check their kind.
			r := Ref{q, seq}
			if m, err := txn.Get(msgKey(q, seq)); err == nil && m.UserMeta()&metaTransient == 0 && !dangling[r] {
				w.rset[r] = struct{}{}
				return nil
			}
			return wb.Delete(item.KeyCopy(nil))
		})
	})
	if err != nil {
		return rec, fmt.Errorf("store: recovering %s: %w", s.dir, err)
	}
	for id, sh := range w.refs {
		if sh.refs == 0 {
			delete(w.refs, id)
			if err := wb.Delete(sharedKey(id)); err != nil {
				return rec, fmt.Errorf("store: recovering %s: %w", s.dir, err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return rec, fmt.Errorf("store: recovering %s: deleting stale records: %w", s.dir, err)
	}
	for q := range orphans {
		rec.orphans = append(rec.orphans, q)
	}
	rec.took = time.Since(start)
	return rec, nil
}

// iterate calls fn for every key of one record type, in key order.
func iterate(txn *badger.Txn, tag byte, opts badger.IteratorOptions, fn func(*badger.Item) error) error {
	opts.Prefix = prefix(tag)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := fn(it.Item()); err != nil {
			return err
		}
	}
	return nil
}
