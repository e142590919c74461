package store

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Quorum queue support. A quorum queue's replicas keep its committed messages under the
// queue's ID with the same 'M' and 'R' keys a classic queue uses (inline records only: a
// replicated message is never a shared body), written by the queue's Raft state machine on
// every member. The state machine needs two things the broker's queues do not: a consistent
// view of one queue's records to stream as a Raft snapshot while later writes go on, and a
// synchronous deletion of every record of the queue before a snapshot is restored over them.

// QueueView is a consistent, read-only view of one queue's records at the moment ViewQueue
// returned, unaffected by later writes. Close releases it; a view held open keeps Badger from
// reclaiming the space of records deleted meanwhile.
type QueueView struct {
	txn *badger.Txn
	id  uint64
}

// ViewQueue waits until every write submitted before it is committed, then opens a view of
// queueID's records.
func (s *Store) ViewQueue(queueID uint64) (*QueueView, error) {
	if err := s.Flush(); err != nil {
		return nil, fmt.Errorf("store: viewing queue %d: %w", queueID, err)
	}
	return &QueueView{txn: s.db.NewTransaction(false), id: queueID}, nil
}

// Each calls fn with each record of the view's queue in seq order, with its delivery count.
// A record refers to its message's bytes only during the call: fn must copy what it keeps.
// The first error fn returns stops the iteration and is returned.
func (v *QueueView) Each(fn func(*Stored) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = queuePrefix(tagMessage, v.id)
	it := v.txn.NewIterator(opts)
	defer it.Close()
	rOpts := badger.DefaultIteratorOptions
	rOpts.Prefix = queuePrefix(tagDeliveries, v.id)
	rit := v.txn.NewIterator(rOpts)
	defer rit.Close()
	rit.Rewind()
	var names interner
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		_, seq, err := parseSeqKey(tagMessage, item.Key())
		if err != nil {
			return fmt.Errorf("store: viewing queue %d: %w", v.id, err)
		}
		if item.UserMeta()&metaRef != 0 {
			return fmt.Errorf("store: viewing queue %d: seq %d refers to a shared body (not a replicated queue's record)", v.id, seq)
		}
		st := Stored{Seq: seq}
		err = item.Value(func(b []byte) error { return names.decodeMessage(b, &st.Msg) })
		if err != nil {
			return fmt.Errorf("store: viewing queue %d seq %d: %w", v.id, seq, err)
		}
		if st.Deliveries, st.HasDeliveries, err = deliveriesAt(rit, seq); err != nil {
			return fmt.Errorf("store: viewing queue %d seq %d: %w", v.id, seq, err)
		}
		if err := fn(&st); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the view.
func (v *QueueView) Close() { v.txn.Discard() }

// DeleteQueueRecords deletes every record ('M' and 'R') of queueID, committed before it
// returns, after every write submitted before it. Unlike PurgeRange it is not a background
// drop, so records appended after it returns are never caught by it. The caller must submit
// no write of queueID concurrently.
func (s *Store) DeleteQueueRecords(queueID uint64) error {
	if err := s.Flush(); err != nil {
		return fmt.Errorf("store: deleting the records of queue %d: %w", queueID, err)
	}
	var ops []op
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = queuePrefix(tagMessage, queueID)
		it := txn.NewIterator(opts)
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			_, seq, err := parseSeqKey(tagMessage, item.Key())
			if err != nil {
				it.Close()
				return err
			}
			o := op{kind: opRemove, ref: Ref{QueueID: queueID, Seq: seq}, key: msgKey(queueID, seq)}
			if item.UserMeta()&metaRef != 0 {
				err := item.Value(func(v []byte) error {
					o.msgID, _, err = decodeRef(v)
					return err
				})
				if err != nil {
					it.Close()
					return err
				}
			}
			ops = append(ops, o)
		}
		it.Close()
		// Delivery counts whose message is gone (Remove deletes the others).
		opts.Prefix = queuePrefix(tagDeliveries, queueID)
		rit := txn.NewIterator(opts)
		defer rit.Close()
		for rit.Rewind(); rit.Valid(); rit.Next() {
			_, seq, err := parseSeqKey(tagDeliveries, rit.Item().Key())
			if err != nil {
				return err
			}
			if _, err := txn.Get(msgKey(queueID, seq)); errors.Is(err, badger.ErrKeyNotFound) {
				ops = append(ops, op{kind: opDel, key: rit.Item().KeyCopy(nil)})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: deleting the records of queue %d: %w", queueID, err)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := s.syncWrites(ops); err != nil {
		return fmt.Errorf("store: deleting the records of queue %d: %w", queueID, err)
	}
	return nil
}
