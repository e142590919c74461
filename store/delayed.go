package store

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Messages held by delayed-message exchanges ('H' records). They are keyed by exchange, then
// due time, then a sequence number, so the broker keeps only the next few in memory and reads
// the following ones with a seek and a short scan. A persistent message's record survives a
// crash; a transient one's is dropped at the next recovery (IndexDelayed).

// Delayed is one message held by a delayed-message exchange until Due.
type Delayed struct {
	Due  int64    // unix ms
	Seq  uint64   // from NewDelayedSeq: orders messages due in the same millisecond
	Keys []string // the routing keys it is routed with when due: its own, CC and BCC
	TTL  int64    // the message's own TTL in ms (the expiration property), -1 for none
	Msg  Message  // Expiry unused
}

// Cursor is d's position in its exchange's order.
func (d *Delayed) Cursor() DelayedCursor { return DelayedCursor{Due: d.Due, Seq: d.Seq} }

// DelayedCursor is the position of one held message in its exchange's order.
type DelayedCursor struct {
	Due int64
	Seq uint64
}

// Less orders cursors by due time, then sequence.
func (c DelayedCursor) Less(o DelayedCursor) bool {
	return c.Due < o.Due || c.Due == o.Due && c.Seq < o.Seq
}

// NewDelayedSeq returns a sequence number no held message of this store has had, across
// restarts (a Badger sequence).
func (s *Store) NewDelayedSeq() (uint64, error) {
	n, err := s.delaySeq.Next()
	if err != nil {
		return 0, fmt.Errorf("store: delayed-message sequence: %w", err)
	}
	return n + 1, nil
}

// PutDelayed stores a held message of exchange in vhost. Like a message write it is
// asynchronous and group-committed: done(err) runs on the writer goroutine once it is on disk
// (or failed: a full disk refuses it as it refuses message writes).
func (s *Store) PutDelayed(vhost, exchange string, d *Delayed, done func(error)) {
	o := op{kind: opDelayed, done: done}
	prefix, err := delayedPrefix(vhost, exchange)
	if err != nil {
		o.err = err
		s.submit(o)
		return
	}
	o.key = delayedKey(prefix, d.Due, d.Seq)
	if o.val, o.err = encodeDelayed(d); o.err == nil && !d.Msg.Persistent {
		o.meta = metaTransient
	}
	if len(o.val) > maxRecord {
		o.err = fmt.Errorf("%w: held message record of %d bytes (at most %d)", ErrInvalid, len(o.val), maxRecord)
	}
	s.submit(o)
}

// DeleteDelayed deletes one held message (once it was routed). done may be nil.
func (s *Store) DeleteDelayed(vhost, exchange string, c DelayedCursor, done func(error)) {
	prefix, err := delayedPrefix(vhost, exchange)
	if err != nil {
		if done != nil {
			done(err)
		}
		return
	}
	s.submit(op{kind: opDel, key: delayedKey(prefix, c.Due, c.Seq), done: done})
}

// ReadDelayed returns up to maxCount held messages of exchange in due order, those after the
// cursor when after is not nil, and past the first at most maxBytes of bodies and properties.
// Only committed records are visible.
func (s *Store) ReadDelayed(vhost, exchange string, after *DelayedCursor, maxCount, maxBytes int) ([]Delayed, error) {
	prefix, err := delayedPrefix(vhost, exchange)
	if err != nil {
		return nil, err
	}
	s.delayedReads.Add(1)
	s.heldReadsGC.Add(1)
	seek := prefix
	if after != nil {
		seek = delayedKey(prefix, after.Due, after.Seq)
	}
	var out []Delayed
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		bytes := 0
		for it.Seek(seek); it.Valid() && len(out) < maxCount && (len(out) == 0 || bytes < maxBytes); it.Next() {
			item := it.Item()
			_, _, due, seq, err := parseDelayedKey(item.Key())
			if err != nil {
				return err
			}
			if after != nil && due == after.Due && seq == after.Seq {
				continue
			}
			d := Delayed{Due: due, Seq: seq}
			if err := item.Value(func(v []byte) error { return decodeDelayed(v, &d) }); err != nil {
				return err
			}
			out = append(out, d)
			bytes += len(d.Msg.Body) + len(d.Msg.Properties)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read held messages of exchange '%s' in vhost '%s': %w", exchange, vhost, err)
	}
	return out, nil
}

// DelayedCount is how many persistent held messages one exchange has.
type DelayedCount struct {
	Vhost, Exchange string
	Count           int64
}

// IndexDelayed reads the keys (not the values) of every held message once, at recovery:
// it deletes the transient ones (a restart loses them, as it loses transient queued
// messages) and counts the rest per exchange. The caller drops the records of exchanges that
// no longer exist with DropDelayed. The deletes are committed when it returns.
func (s *Store) IndexDelayed() ([]DelayedCount, error) {
	var out []DelayedCount
	var dels [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(tagDelayed)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.UserMeta()&metaTransient != 0 {
				dels = append(dels, item.KeyCopy(nil))
				continue
			}
			vh, x, _, _, err := parseDelayedKey(item.Key())
			if err != nil {
				return err
			}
			if n := len(out); n == 0 || out[n-1].Vhost != vh || out[n-1].Exchange != x {
				out = append(out, DelayedCount{Vhost: vh, Exchange: x})
			}
			out[len(out)-1].Count++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: index held messages: %w", err)
	}
	for _, k := range dels {
		s.submit(op{kind: opDel, key: k})
	}
	if len(dels) > 0 {
		// Committed before the exchanges read their first window, which must not see them.
		if err := s.Flush(); err != nil {
			return nil, fmt.Errorf("store: drop transient held messages: %w", err)
		}
		s.log.Info().Int("transient_deleted", len(dels)).Msg("store: dropped transient held messages")
	}
	return out, nil
}

// delayedDropChunk is how many held-message deletes DropDelayed submits before waiting for them.
const delayedDropChunk = 4096

// DropDelayed deletes every held message of exchange (the exchange was deleted) and returns
// how many there were. It waits for the deletes, chunk by chunk, so memory stays bounded.
func (s *Store) DropDelayed(vhost, exchange string) (int64, error) {
	p, err := delayedPrefix(vhost, exchange)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < delayedDropChunk; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("store: drop held messages of exchange '%s' in vhost '%s': %w", exchange, vhost, err)
		}
		if len(keys) == 0 {
			return n, nil
		}
		for _, k := range keys {
			s.submit(op{kind: opDel, key: k})
		}
		n += int64(len(keys))
		if err := s.Flush(); err != nil {
			return n, fmt.Errorf("store: drop held messages of exchange '%s' in vhost '%s': %w", exchange, vhost, err)
		}
	}
}

// Held-message record: version u8 | padding length uvarint | padding | ttl i64 | key count
// uvarint | keys (u8 len each) | message record (records.go). The padding makes every record
// at least valueThreshold bytes long, so it goes to the value log like a queued message's body
// and the LSM holds only its key and a pointer: a million small held messages inline in the
// LSM made Badger's flushes and compactions hold hundreds of MiB (measured: 344 MiB RSS for
// 300k 64-byte messages, 103 MiB padded).
func encodeDelayed(d *Delayed) ([]byte, error) {
	n := 8 + uvarintLen(uint64(len(d.Keys))) + messageRecordSize(&d.Msg)
	for _, k := range d.Keys {
		n += 1 + len(k)
	}
	pad := max(valueThreshold-3-n, 0)
	for 1+uvarintLen(uint64(pad))+pad+n < valueThreshold {
		pad++
	}
	b := make([]byte, 0, 1+uvarintLen(uint64(pad))+pad+n)
	b = append(b, recordV1)
	b = binary.AppendUvarint(b, uint64(pad))
	b = append(b, make([]byte, pad)...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.TTL))
	b = binary.AppendUvarint(b, uint64(len(d.Keys)))
	var err error
	for _, k := range d.Keys {
		if b, err = appendName(b, k); err != nil {
			return nil, err
		}
	}
	return appendMessage(b, &d.Msg)
}

func decodeDelayed(v []byte, d *Delayed) error {
	if len(v) < 1 || v[0] != recordV1 {
		return badValue("held message", v)
	}
	pad, w := binary.Uvarint(v[1:])
	if w <= 0 || pad > uint64(len(v)) || len(v) < 1+w+int(pad)+8 {
		return badValue("held message", v)
	}
	rest := v[1+w+int(pad):]
	d.TTL = int64(binary.BigEndian.Uint64(rest))
	rest = rest[8:]
	nk, w := binary.Uvarint(rest)
	if w <= 0 || nk > uint64(len(rest)) {
		return badValue("held message", v)
	}
	rest = rest[w:]
	d.Keys = make([]string, 0, nk)
	for range nk {
		k, r, ok := readShort(rest)
		if !ok {
			return badValue("held message", v)
		}
		d.Keys = append(d.Keys, string(k))
		rest = r
	}
	// The message aliases the value, which Badger owns only for the callback: copy it.
	if err := decodeMessage(append([]byte(nil), rest...), &d.Msg); err != nil {
		return err
	}
	return nil
}
