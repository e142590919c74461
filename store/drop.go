package store

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Background drops: deleting a queue's records up to a seq (PurgeQueue, DeleteQueue, and the
// records of deleted queues found at Open). A drop runs on the writer goroutine in steps of
// dropChunk keys, each step alone in its batch: it reads the committed state (so a record is
// never dereferenced twice, whatever the broker removes meanwhile), deletes what it found and
// the shared bodies whose last reference went, commits, and queues its next step behind
// whatever was submitted meanwhile, so confirms keep flowing during a long purge.

// drop starts a background drop of queueID's records with from <= seq <= through. done
// (may be nil) runs on the writer goroutine when the last step is committed.
func (s *Store) drop(queueID, from, through uint64, done func(error)) {
	s.drops.Add(1)
	s.submit(op{kind: opDrop, ref: Ref{QueueID: queueID}, nextM: from, nextR: from, through: through, done: done})
}

// settle waits until every background drop has finished. Tests only.
func (s *Store) settle() error {
	for s.drops.Load() > 0 {
		if err := s.Flush(); err != nil {
			return err
		}
	}
	return s.Flush()
}

func (w *writer) dropStep(o *op) {
	s := w.s
	finish := func(err error) {
		s.drops.Add(-1)
		if err != nil {
			s.log.Error().Err(err).Uint64("queue_id", o.ref.QueueID).
				Msg("store: dropping queue records failed; the rest goes at the next Open or purge")
		}
		if o.done != nil {
			o.done(err)
		}
	}
	var (
		dels   [][]byte
		rkeys  []Ref
		counts = map[uint64]uint32{} // references dropped per shared body
	)
	err := w.db.View(func(txn *badger.Txn) error {
		q := o.ref.QueueID
		if !o.doneM {
			var err error
			o.nextM, o.doneM, err = scanQueue(txn, tagMessage, q, o.nextM, o.through, func(item *badger.Item, _ uint64) error {
				dels = append(dels, item.KeyCopy(nil))
				if item.UserMeta()&metaRef == 0 {
					return nil
				}
				return item.Value(func(v []byte) error {
					id, _, err := decodeRef(v)
					if err == nil {
						counts[id]++
					}
					return err
				})
			})
			if err != nil {
				return err
			}
		}
		if o.doneR {
			return nil
		}
		var err error
		o.nextR, o.doneR, err = scanQueue(txn, tagDeliveries, q, o.nextR, o.through, func(item *badger.Item, seq uint64) error {
			dels = append(dels, item.KeyCopy(nil))
			rkeys = append(rkeys, Ref{q, seq})
			return nil
		})
		return err
	})
	if err != nil {
		finish(fmt.Errorf("store: drop queue %d: %w", o.ref.QueueID, err))
		return
	}
	// Shared bodies whose last reference goes, deleted after the refs that justify it.
	newRefs := make(map[uint64]shared, len(counts))
	for id, n := range counts {
		sh, ok := w.refs[id]
		if !ok {
			continue
		}
		if sh.refs <= n {
			sh.refs = 0
			dels = append(dels, sharedKey(id))
		} else {
			sh.refs -= n
		}
		newRefs[id] = sh
	}
	if err := w.deleteKeys(dels); err != nil {
		finish(writeError(err))
		return
	}
	for id, sh := range newRefs {
		if sh.refs == 0 {
			delete(w.refs, id)
		} else {
			w.refs[id] = sh
		}
	}
	for _, r := range rkeys {
		delete(w.rset, r)
	}
	w.batches.Add(1)
	w.removes.Add(int64(len(dels)))
	if o.doneM && o.doneR {
		finish(nil)
		return
	}
	s.requeue(*o)
}

// scanQueue calls fn for queueID's keys of one type (tagMessage or tagDeliveries) from seq
// `from` on, while seq <= through, at most dropChunk of them. It returns where the next step
// starts and whether the range is finished.
func scanQueue(txn *badger.Txn, tag byte, queueID, from, through uint64,
	fn func(*badger.Item, uint64) error) (next uint64, done bool, err error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = queuePrefix(tag, queueID)
	it := txn.NewIterator(opts)
	defer it.Close()
	n := 0
	for it.Seek(appendSeqKey(nil, tag, queueID, from)); it.Valid(); it.Next() {
		_, seq, err := parseSeqKey(tag, it.Item().Key())
		if err != nil {
			return from, false, err
		}
		if seq > through {
			return seq, true, nil
		}
		if n == dropChunk {
			return seq, false, nil
		}
		if err := fn(it.Item(), seq); err != nil {
			return from, false, err
		}
		n++
	}
	return 0, true, nil
}

// deleteKeys deletes keys in order, in as many transactions as Badger needs. Atomicity
// across the split is not needed: every key it deletes is garbage, and the bodies come last.
func (w *writer) deleteKeys(keys [][]byte) error {
	for len(keys) > 0 {
		txn := w.db.NewTransaction(true)
		n := 0
		for ; n < len(keys); n++ {
			if err := txn.Delete(keys[n]); err != nil {
				if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
					break
				}
				txn.Discard()
				return err
			}
		}
		err := txn.Commit()
		if err != nil {
			return err
		}
		var b int
		for _, k := range keys[:n] {
			b += len(k)
		}
		w.committed(b)
		keys = keys[n:]
	}
	return nil
}
