package store

import (
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// Message writes are asynchronous and group-committed: each call encodes what it needs
// (the caller may reuse m once it returns), queues it and returns at once. done(err) runs on
// the writer goroutine once the write is committed and synced (err nil), or has failed
// (err non-nil: the broker nacks). Calls are applied in submission order, and done
// callbacks run in that order. done must not block: it holds up every later write.

// maxRecord is the largest message record Badger takes (its value-log file size).
const maxRecord = valueLogFileSize - 1<<10

// MaxBody is the largest message body the store holds alongside up to 1 MiB of properties,
// exchange and routing key: the broker's max-message-size must not exceed it.
const MaxBody = maxRecord - 1<<20

// NewMessageID returns an ID for a shared body, unique among the bodies in the store. IDs
// come from a counter seeded at Open above every stored body.
func (s *Store) NewMessageID() uint64 { return s.msgIDs.Add(1) }

// PutShared stores the body of a message routed to several queues, once, with its initial
// reference count: refs Appends with this msgID must follow (each queue's reference), and
// the body is deleted when as many Removes (or purges) have dropped them. Refcounts live in
// the writer's memory and are recounted from the references at Open.
func (s *Store) PutShared(msgID uint64, m *Message, refs int, done func(error)) {
	o := op{kind: opShared, msgID: msgID, done: done, persistent: m.Persistent}
	size := messageRecordSize(m)
	switch {
	case msgID == 0:
		o.err = fmt.Errorf("%w: PutShared with message ID 0", ErrInvalid)
	case refs < 1 || refs > math.MaxUint32:
		o.err = fmt.Errorf("%w: PutShared with %d references", ErrInvalid, refs)
	case size > maxRecord:
		o.err = fmt.Errorf("%w: message record of %d bytes (at most %d)", ErrInvalid, size, maxRecord)
	default:
		buf := make([]byte, 0, sharedKeyLen+size)
		buf = append(buf, sharedKey(msgID)...)
		buf, o.err = appendMessage(buf, m)
		if o.err == nil {
			o.key, o.val = buf[:sharedKeyLen:sharedKeyLen], buf[sharedKeyLen:]
		}
		o.n, o.size = uint32(refs), uint32(size)
	}
	s.submit(o)
}

// Append stores one message of one queue. With msgID 0 the message is stored inline in the
// queue's record (m required); otherwise the record refers to the body PutShared stored
// under msgID (m may be nil). m.Persistent decides the record's transient flag either way
// (for a nil m, the shared body's); transient records are deleted at the next Open.
func (s *Store) Append(ref Ref, msgID uint64, m *Message, done func(error)) {
	o := op{kind: opAppend, ref: ref, msgID: msgID, done: done}
	if m != nil {
		o.persistent, o.hasMsg = m.Persistent, true
	}
	switch {
	case msgID != 0:
		// The ref record is filled in by the writer, which knows the body's size.
		buf := appendSeqKey(make([]byte, 0, msgKeyLen+refRecordLen), tagMessage, ref.QueueID, ref.Seq)
		o.key, o.val = buf[:msgKeyLen:msgKeyLen], buf[msgKeyLen:]
	case m == nil:
		o.err = fmt.Errorf("%w: Append of an inline message without a message", ErrInvalid)
	default:
		size := messageRecordSize(m)
		if size > maxRecord {
			o.err = fmt.Errorf("%w: message record of %d bytes (at most %d)", ErrInvalid, size, maxRecord)
			break
		}
		buf := appendSeqKey(make([]byte, 0, msgKeyLen+size), tagMessage, ref.QueueID, ref.Seq)
		buf, o.err = appendMessage(buf, m)
		if o.err == nil {
			o.key, o.val = buf[:msgKeyLen:msgKeyLen], buf[msgKeyLen:]
		}
		if !m.Persistent {
			o.meta = metaTransient
		}
	}
	s.submit(o)
}

// Remove deletes one message of one queue (ack, drop, expiry) and its delivery count. A
// non-zero msgID drops the record's reference to that shared body, deleting the body with
// the last one; a Remove of a record that is already gone drops nothing. done may be nil.
func (s *Store) Remove(ref Ref, msgID uint64, done func(error)) {
	s.submit(op{kind: opRemove, ref: ref, msgID: msgID, key: msgKey(ref.QueueID, ref.Seq), done: done})
}

// SetDeliveries records how many times a message was delivered (the 'R' marker), so a
// message redelivered after a restart carries redelivered=true. done may be nil.
func (s *Store) SetDeliveries(ref Ref, n uint32, done func(error)) {
	buf := appendSeqKey(make([]byte, 0, msgKeyLen+5), tagDeliveries, ref.QueueID, ref.Seq)
	buf = append(buf, encodeDeliveries(n)...)
	s.submit(op{kind: opDeliveries, ref: ref, key: buf[:msgKeyLen:msgKeyLen], val: buf[msgKeyLen:], done: done})
}

// ReadQueue returns queueID's records with seq > afterSeq in seq order, at most maxCount of
// them and, past the first, at most maxBytes of StoredSize in all. It returns at least one
// record if any exists, and none when the queue has nothing after afterSeq. Records submitted
// but not yet committed are not visible. Safe for concurrent use; it seeks to the cursor, so
// deleted records before it cost nothing.
func (s *Store) ReadQueue(queueID, afterSeq uint64, maxCount, maxBytes int) ([]Stored, error) {
	if afterSeq == math.MaxUint64 {
		return nil, nil
	}
	maxCount = max(maxCount, 1)
	var out []Stored
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = queuePrefix(tagMessage, queueID)
		opts.PrefetchSize = min(opts.PrefetchSize, maxCount)
		it := txn.NewIterator(opts)
		defer it.Close()
		rOpts := badger.DefaultIteratorOptions
		rOpts.Prefix = queuePrefix(tagDeliveries, queueID)
		rit := txn.NewIterator(rOpts)
		defer rit.Close()
		rit.Seek(deliveriesKey(queueID, afterSeq+1))

		out = make([]Stored, 0, min(maxCount, 256))
		var total int64
		var names interner
		for it.Seek(msgKey(queueID, afterSeq+1)); it.Valid() && len(out) < maxCount; it.Next() {
			item := it.Item()
			_, seq, err := parseSeqKey(tagMessage, item.Key())
			if err != nil {
				return err
			}
			st := Stored{Seq: seq}
			var size int64
			var ref []byte
			if item.UserMeta()&metaRef != 0 {
				if ref, err = item.ValueCopy(nil); err != nil {
					return err
				}
				var sz uint32
				if st.MsgID, sz, err = decodeRef(ref); err != nil {
					return err
				}
				size = int64(sz)
			} else {
				size = recordLen(item)
			}
			if len(out) > 0 && total+size > int64(maxBytes) {
				break
			}
			var v []byte
			if st.MsgID == 0 {
				v, err = item.ValueCopy(nil)
			} else {
				v, err = readShared(txn, st.MsgID)
			}
			if errors.Is(err, badger.ErrKeyNotFound) {
				s.log.Warn().Uint64("queue_id", queueID).Uint64("seq", seq).Uint64("msg_id", st.MsgID).
					Msg("store: skipping a message whose shared body is missing")
				continue
			}
			if err != nil {
				return err
			}
			if err := names.decodeMessage(v, &st.Msg); err != nil {
				return fmt.Errorf("queue %d seq %d: %w", queueID, seq, err)
			}
			if ref != nil {
				st.Msg.Persistent = ref[1]&flagPersistent != 0
			}
			if st.Deliveries, st.HasDeliveries, err = deliveriesAt(rit, seq); err != nil {
				return err
			}
			total += size
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading queue %d: %w", queueID, err)
	}
	return out, nil
}

func readShared(txn *badger.Txn, msgID uint64) ([]byte, error) {
	item, err := txn.Get(sharedKey(msgID))
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// deliveriesAt advances rit (over the queue's 'R' keys) to seq and returns its count there.
func deliveriesAt(rit *badger.Iterator, seq uint64) (uint32, bool, error) {
	for ; rit.Valid(); rit.Next() {
		_, rseq, err := parseSeqKey(tagDeliveries, rit.Item().Key())
		if err != nil {
			return 0, false, err
		}
		if rseq < seq {
			continue
		}
		if rseq > seq {
			return 0, false, nil
		}
		var n uint32
		err = rit.Item().Value(func(v []byte) error {
			n, err = decodeDeliveries(v)
			return err
		})
		return n, err == nil, err
	}
	return 0, false, nil
}

// IndexQueue counts queueID's records and sums their StoredSize from keys alone: the size of
// an inline record is its value's length as the LSM entry records it, a ref record (small,
// in the LSM) carries its body's size. No value-log read.
func (s *Store) IndexQueue(queueID uint64) (QueueIndex, error) {
	var ix QueueIndex
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = queuePrefix(tagMessage, queueID)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			_, seq, err := parseSeqKey(tagMessage, item.Key())
			if err != nil {
				return err
			}
			size := recordLen(item)
			if item.UserMeta()&metaRef != 0 {
				err := item.Value(func(v []byte) error {
					_, sz, err := decodeRef(v)
					size = int64(sz)
					return err
				})
				if err != nil {
					return err
				}
			}
			if ix.Count == 0 {
				ix.FirstSeq = seq
			}
			ix.LastSeq = seq
			ix.Count++
			ix.Bytes += size
		}
		return nil
	})
	if err != nil {
		return QueueIndex{}, fmt.Errorf("store: indexing queue %d: %w", queueID, err)
	}
	return ix, nil
}

// recordLen is the exact length of item's value without reading it. For a value kept in the
// LSM (shorter than valueThreshold) Item.ValueSize is exact. For one in the value log it is
// derived from the value pointer's entry length, assuming a varint header of 6 bytes; our
// 17-byte keys without expiry make the header 4 bytes plus the varint length of the value,
// so the exact length is the one n for which size = n + uvarintLen(n) - 2.
// TestIndexQueueBytesExact pins this to Badger's entry format.
func recordLen(item *badger.Item) int64 {
	size := item.ValueSize()
	if size < valueThreshold {
		return size
	}
	for w := int64(1); w <= 10; w++ {
		if n := size + 2 - w; uvarintLen(uint64(n)) == int(w) {
			return n
		}
	}
	return size
}
