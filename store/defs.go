package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Definitions are written through the writer like messages, so they are ordered with message
// writes, and the calls wait until the write is committed (and synced).

// PutExchange stores (or replaces) an exchange definition.
func (s *Store) PutExchange(x Exchange) error {
	k, err := exchangeKey(x.Vhost, x.Name)
	if err != nil {
		return err
	}
	v, err := encodeExchange(&x)
	if err != nil {
		return err
	}
	return s.syncWrite(op{kind: opSet, key: k, val: v})
}

// DeleteExchange deletes an exchange definition (a missing one is not an error).
func (s *Store) DeleteExchange(vhost, name string) error {
	k, err := exchangeKey(vhost, name)
	if err != nil {
		return err
	}
	return s.syncWrite(op{kind: opDel, key: k})
}

// PutQueue stores (or replaces) a queue definition. A zero q.ID is first set to a new ID
// from the queue-ID sequence; IDs are never reused, so records of a deleted queue can never
// be mistaken for a new queue's.
func (s *Store) PutQueue(q *Queue) error {
	k, err := queueKey(q.Vhost, q.Name)
	if err != nil {
		return err
	}
	for q.ID == 0 {
		if q.ID, err = s.queueSeq.Next(); err != nil {
			return fmt.Errorf("store: new queue ID: %w", err)
		}
	}
	return s.syncWrite(op{kind: opSet, key: k, val: encodeQueue(q)})
}

// DeleteQueue deletes the queue definition now; its messages ('M', 'R', and their
// references to shared bodies) are dropped in the background afterwards. Removes of its
// messages submitted later are harmless.
func (s *Store) DeleteQueue(vhost, name string, id uint64) error {
	k, err := queueKey(vhost, name)
	if err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.submit(op{kind: opDel, key: k, done: func(err error) {
		if err == nil { // on the writer goroutine: queue the drop right behind the delete
			s.drops.Add(1)
			s.requeue(op{kind: opDrop, ref: Ref{QueueID: id}, through: ^uint64(0)})
		}
		ch <- err
	}})
	return <-ch
}

// PurgeQueue drops queueID's records with seq <= throughSeq in the background: it is
// PurgeRange(queueID, 0, throughSeq).
func (s *Store) PurgeQueue(queueID, throughSeq uint64) { s.PurgeRange(queueID, 0, throughSeq) }

// PurgeRange drops queueID's records ('M', 'R', and their references to shared bodies) with
// afterSeq < seq <= throughSeq, in the background. Every such record goes, including messages
// the caller still holds unacknowledged: leave those out of the range, or Remove them one by
// one. Close waits for purges to finish; a crash during one leaves the rest of the range,
// which comes back at the next Open.
func (s *Store) PurgeRange(queueID, afterSeq, throughSeq uint64) {
	if afterSeq >= throughSeq {
		return
	}
	s.drop(queueID, afterSeq+1, throughSeq, nil)
}

// PutBinding stores a binding.
func (s *Store) PutBinding(b Binding) error {
	k, err := bindingKey(&b)
	if err != nil {
		return err
	}
	return s.syncWrite(op{kind: opSet, key: k, val: encodeBinding(&b)})
}

// DeleteBinding deletes a binding (a missing one is not an error).
func (s *Store) DeleteBinding(b Binding) error {
	k, err := bindingKey(&b)
	if err != nil {
		return err
	}
	return s.syncWrite(op{kind: opDel, key: k})
}

// Definitions returns every stored exchange, queue and binding, each kind in key order: by
// vhost, then name, where names compare by length first (they are length-prefixed).
func (s *Store) Definitions() (xs []Exchange, qs []Queue, bs []Binding, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		err := iterate(txn, tagExchange, opts, func(item *badger.Item) error {
			var x Exchange
			var err error
			if x.Vhost, x.Name, err = parseExchangeKey(item.Key()); err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := decodeExchange(v, &x); err != nil {
				return err
			}
			xs = append(xs, x)
			return nil
		})
		if err != nil {
			return err
		}
		err = iterate(txn, tagQueue, opts, func(item *badger.Item) error {
			var q Queue
			var err error
			if q.Vhost, q.Name, err = parseQueueKey(item.Key()); err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := decodeQueue(v, &q); err != nil {
				return err
			}
			qs = append(qs, q)
			return nil
		})
		if err != nil {
			return err
		}
		return iterate(txn, tagBinding, opts, func(item *badger.Item) error {
			var b Binding
			if err := parseBindingKey(item.Key(), &b); err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := decodeBinding(v, &b); err != nil {
				return err
			}
			bs = append(bs, b)
			return nil
		})
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("store: reading definitions: %w", err)
	}
	return xs, qs, bs, nil
}
