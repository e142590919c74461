package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Messages held by delayed-message exchanges: the API over the held-message log
// (delayedlog.go), which keeps them in a file per exchange and second of due time, so the
// broker keeps only the next few in memory and reads the following ones sequentially. A
// persistent message's record survives a crash; a transient one's is dropped at the next
// Open.

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

// PutDelayed stores a held message of exchange in vhost, in the held-message log
// (delayedlog.go). Like a message write it is asynchronous and group-committed: done(err)
// runs on the log's writer goroutine once it is on disk (or failed: a full disk refuses it as
// it refuses message writes).
func (s *Store) PutDelayed(vhost, exchange string, d *Delayed, done func(error)) {
	frame, err := appendSegRecord(nil, vhost, exchange, d)
	if err != nil {
		done(err)
		return
	}
	s.held.submit(heldOp{kind: heldPut, key: heldKey{vhost, exchange}, due: d.Due, frame: frame, done: done})
}

// DeleteDelayed records that one held message was delivered (routed). Once the deliveries are
// committed, a delivery mark is appended to its time slice's file, or the file is removed
// when every message in it is delivered (delayedlog.go); a read that starts before that may
// still return it. done, which may be nil, is called at once.
func (s *Store) DeleteDelayed(vhost, exchange string, c DelayedCursor, done func(error)) {
	s.held.delivered(heldKey{vhost, exchange}, c)
	if done != nil {
		done(nil)
	}
}

// ReadDelayed returns up to maxCount held messages of exchange in due order, those after the
// cursor when after is not nil, and past the first at most maxBytes of bodies and properties.
// Only committed records are visible.
func (s *Store) ReadDelayed(vhost, exchange string, after *DelayedCursor, maxCount, maxBytes int) ([]Delayed, error) {
	return s.held.readHeld(heldKey{vhost, exchange}, after, maxCount, maxBytes)
}

// DelayedCount is how many persistent held messages one exchange has.
type DelayedCount struct {
	Vhost, Exchange string
	Count           int64
}

// IndexDelayed returns how many held messages each exchange has, as recovered at Open (the
// transient ones are gone: a restart loses them, as it loses transient queued messages),
// sorted by vhost and exchange. The caller drops the messages of exchanges that no longer
// exist with DropDelayed.
func (s *Store) IndexDelayed() ([]DelayedCount, error) {
	if err := s.migrateHeld(); err != nil {
		return nil, err
	}
	l := s.held
	l.mu.Lock()
	var out []DelayedCount
	for k, x := range l.xs {
		if x.count > 0 {
			out = append(out, DelayedCount{Vhost: k.vhost, Exchange: k.exchange, Count: x.count})
		}
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b DelayedCount) int {
		return cmp.Or(strings.Compare(a.Vhost, b.Vhost), strings.Compare(a.Exchange, b.Exchange))
	})
	return out, nil
}

// DropDelayed deletes every held message of exchange (the exchange was deleted) and returns
// how many there were: its files are removed.
func (s *Store) DropDelayed(vhost, exchange string) (int64, error) {
	type result struct {
		n   int64
		err error
	}
	ch := make(chan result, 1)
	s.held.submit(heldOp{kind: heldDrop, key: heldKey{vhost, exchange}, dropped: func(n int64, err error) { ch <- result{n, err} }})
	r := <-ch
	return r.n, r.err
}

// migrateHeld moves held messages a previous version kept in Badger ('H' records) to the
// held-message log, dropping the transient ones, then deletes the records.
func (s *Store) migrateHeld() error {
	var moved, transient int
	var keys [][]byte
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(tagDelayed)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			keys = append(keys, item.KeyCopy(nil))
			if item.UserMeta()&metaTransient != 0 {
				transient++
				continue
			}
			vh, x, due, seq, err := parseDelayedKey(item.Key())
			if err != nil {
				return err
			}
			d := Delayed{Due: due, Seq: seq}
			if err := item.Value(func(v []byte) error { return decodeDelayed(v, &d) }); err != nil {
				return err
			}
			wg.Add(1)
			s.PutDelayed(vh, x, &d, func(err error) {
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				wg.Done()
			})
			moved++
		}
		return nil
	})
	wg.Wait()
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("store: move held messages out of Badger: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		s.submit(op{kind: opDel, key: k})
	}
	if err := s.Flush(); err != nil {
		return fmt.Errorf("store: move held messages out of Badger: %w", err)
	}
	s.log.Info().Int("moved", moved).Int("transient_deleted", transient).Msg("store: moved held messages to the held-message log")
	return nil
}

// The 'H' record of earlier versions, read only to move it to the held-message log
// (migrateHeld): version u8 | padding length uvarint | padding | ttl i64 | key count uvarint
// | keys (u8 len each) | message record (records.go). The padding made every record at least
// valueThreshold bytes long, so it went to Badger's value log. encodeDelayed is for tests.
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
