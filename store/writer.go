package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The group-commit writer. Callers append ops to Store.pending under Store.mu and return at
// once (the slice grows; nothing blocks). The writer goroutine takes everything waiting, up
// to maxBatchOps ops and maxBatchBytes bytes, turns the ops into Badger entries (plan), commits
// them in one transaction (split on ErrTxnTooBig at op boundaries, so an op's entries are
// always committed together), and calls each op's done in submission order. With SyncWrites
// the commit is the fsync: one per batch.

type opKind uint8

const (
	opNop        opKind = iota // Flush: a barrier with no entries
	opSet                      // definitions: key = val
	opDel                      // definitions: delete key
	opAppend                   // 'M' record (inline or ref)
	opShared                   // 'P' body with its initial refcount
	opRemove                   // delete 'M', its 'R', and a reference to a 'P'
	opDeliveries               // 'R' marker
	opDrop                     // background: delete a queue's records up to a seq, in chunks
	opFlushMem                 // reclaim: flush Badger's memtables (flushMemtables), alone in its batch
)

type op struct {
	kind       opKind
	meta       byte   // UserMeta of an opSet/opAppend entry
	key, val   []byte // built by the submitter, except ref records (filled by plan)
	ref        Ref
	msgID      uint64
	n          uint32 // opShared: refcount; opDeliveries: count
	size       uint32 // opShared: record size
	persistent bool   // opShared, opAppend
	data       bool   // opSet: counts as message data for the disk guard (a Raft entry's)
	hasMsg     bool   // opAppend of a ref: persistent was given by the caller
	through    uint64 // opDrop: last seq to delete
	nextM      uint64 // opDrop cursors, and whether each key type is finished
	nextR      uint64
	doneM      bool
	doneR      bool
	done       func(error)
	err        error // set before or during planning: done gets it, nothing is written

	// Writer-only planning state.
	first, last int    // the op's entries: w.ents[first:last]
	undoShared  shared // refcount state before the op, restored if its commit fails
	undoRefs    bool
	undoHad     bool
	undoR       int8 // +1: the op removed ref from rset; -1: it added it
}

func (o *op) bytes() int { return len(o.key) + len(o.val) }

// addsData: ops refused while the disk is nearly full: message writes. Deletes still go
// through, and so do definitions (small, and needed to declare a queue to drain into), as
// RabbitMQ's disk alarm blocks publishers only.
func (o *op) addsData() bool {
	switch o.kind {
	case opAppend, opShared, opDeliveries:
		return true
	case opSet:
		return o.data
	}
	return false
}

// shared is what the writer knows about a 'P' body.
type shared struct {
	refs      uint32 // 'M' refs not yet removed
	size      uint32 // the 'P' record's length, copied into each ref record
	transient bool
}

// ent is one Badger write.
type ent struct {
	key, val []byte
	meta     byte
	del      bool
}

// writer is owned by the writer goroutine (and by Open before it starts).
type writer struct {
	s       *Store
	db      *badger.DB
	refs    map[uint64]shared // shared bodies by msgID
	rset    map[Ref]struct{}  // 'R' keys that exist, so Remove deletes only those
	overlay map[Ref]uint64    // this batch: ref records set (their msgID) or removed (0)
	ents    []ent
	spare   []op
	snap    *badger.Txn // read view at batch start, for Remove's existence checks

	sinceDiskCheck int64
	diskErr        error                           // non-nil while the disk is nearly full
	freeSpace      func(dir string) (uint64, bool) // freeBytes; tests replace it
	logs           logGuard                        // preallocated log files (guardLogs)

	// memTables bounds what Badger's memtables hold as level-0 tables: tableBytes of every
	// commit since the last flushMemtables (a flush writes every memtable), at most
	// maxMemTables; it starts there when Badger replayed memtable logs at Open, at 0 when
	// there were none.
	memTables atomic.Int64

	batches, ops, commits atomic.Int64 // for benchmarks and logs
	removes               atomic.Int64 // ops that deleted messages, for diskLoop's reclaim
	commitBytes           atomic.Int64 // key and value bytes committed (see committed)
	commitNanos           atomic.Int64 // time spent in Commit
}

func (w *writer) init(s *Store) {
	w.s, w.db = s, s.db
	w.refs = make(map[uint64]shared)
	w.rset = make(map[Ref]struct{})
	w.overlay = make(map[Ref]uint64)
	w.sinceDiskCheck = 1 << 62 // check before the first batch
	w.freeSpace = freeBytes
	w.memTables.Store(maxMemTables)
}

// maxMemTables is the most Badger's memtables can hold: every memtable full.
const maxMemTables = numMemtables * memTableSize

// flushRoom is the free space a memtable flush needs: the tables it writes, and a margin for
// Badger's own writes (value-log GC's rewrites) that tableBytes does not see.
func (w *writer) flushRoom() uint64 {
	return uint64(min(w.memTables.Load(), maxMemTables)) + 2<<20
}

// submit queues o for the writer. It never blocks beyond the mutex; after Close, done gets
// ErrClosed at once on the caller's goroutine.
func (s *Store) submit(o op) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if o.kind == opDrop {
			s.drops.Add(-1)
		}
		if o.done != nil {
			o.done(ErrClosed)
		}
		return
	}
	s.pending = append(s.pending, o)
	s.pendingBytes.Add(int64(o.bytes()))
	first := len(s.pending)-s.head == 1
	s.mu.Unlock()
	if first {
		s.wake.Signal()
	}
}

// requeue is submit for the writer's own follow-up work: accepted while closing, so Close
// drains it.
func (s *Store) requeue(o op) {
	s.mu.Lock()
	s.pending = append(s.pending, o)
	s.pendingBytes.Add(int64(o.bytes()))
	s.mu.Unlock()
}

// syncWrite submits o and waits for its commit.
func (s *Store) syncWrite(o op) error {
	ch := make(chan error, 1)
	o.done = func(err error) { ch <- err }
	s.submit(o)
	return <-ch
}

// syncWrites submits ops in order and waits until all are committed; the error is the first
// op's that failed.
func (s *Store) syncWrites(ops []op) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	wg.Add(len(ops))
	for i := range ops {
		ops[i].done = func(err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		}
		s.submit(ops[i])
	}
	wg.Wait()
	return first
}

// Flush waits until everything submitted before it is committed. Background drops (purges,
// deleted queues) continue after it returns; Close waits for those too.
func (s *Store) Flush() error { return s.syncWrite(op{kind: opNop}) }

func (w *writer) run() {
	s := w.s
	defer close(s.writerDone)
	for {
		s.mu.Lock()
		for s.head == len(s.pending) && !s.closed {
			s.wake.Wait()
		}
		if s.head == len(s.pending) {
			s.mu.Unlock()
			return
		}
		batch := w.take()
		s.mu.Unlock()
		switch batch[0].kind {
		case opDrop:
			w.dropStep(&batch[0])
			w.guardLogs(false)
		case opFlushMem:
			err := w.flushMemtables()
			w.guardLogs(false)
			batch[0].done(err)
		default:
			w.process(batch)
		}
		clear(batch)
		w.spare = batch[:0]
	}
}

// take removes the next batch from s.pending[s.head:] (s.mu held). A drop runs alone: it reads
// the committed state, so everything before it must be committed first. So does a memtable
// flush, during which Badger refuses writes.
//
// When the writer is behind, a batch is a prefix of what waits. Slicing it off the front would
// shrink the slice's capacity at every batch, so appends would keep reallocating and copying
// everything still waiting (a tenth of the broker's CPU while a queue paged out at 50k msg/s).
// Instead the front advances by head, and the waiting ops move down only once head has passed
// half the slice: each op is copied at most about once.
func (w *writer) take() []op {
	s := w.s
	waiting := s.pending[s.head:]
	n, size := 1, waiting[0].bytes()
	if alone := func(o *op) bool { return o.kind == opDrop || o.kind == opFlushMem }; !alone(&waiting[0]) {
		for n < len(waiting) && n < maxBatchOps {
			o := &waiting[n]
			if alone(o) || size+o.bytes() > maxBatchBytes {
				break
			}
			size += o.bytes()
			n++
		}
	}
	s.pendingBytes.Add(-int64(size))
	s.room.Broadcast()
	if s.head == 0 && n == len(waiting) {
		// Everything: swap the slices, no copy.
		batch := s.pending
		s.pending = w.spare[:0]
		return batch
	}
	batch := append(w.spare[:0], waiting[:n]...)
	clear(waiting[:n])
	s.head += n
	switch {
	case s.head == len(s.pending):
		s.pending, s.head = s.pending[:0], 0
	case s.head >= len(s.pending)/2:
		k := copy(s.pending, s.pending[s.head:])
		clear(s.pending[k:])
		s.pending, s.head = s.pending[:k], 0
	}
	return batch
}

func (w *writer) process(batch []op) {
	size := w.checkDisk(batch)
	w.ents = w.ents[:0]
	clear(w.overlay)
	removes := int64(0)
	for i := range batch {
		w.plan(&batch[i])
		if batch[i].kind == opRemove {
			removes++
		}
	}
	if size > maxBatchBytes {
		w.guardLargeBatch()
	}
	w.commit(batch)
	w.guardLogs(false)
	w.removes.Add(removes)
	if w.snap != nil {
		w.snap.Discard()
		w.snap = nil
	}
	clear(w.ents) // drop references to the submitters' buffers
	w.batches.Add(1)
	w.ops.Add(int64(len(batch)))
	for i := range batch {
		if d := batch[i].done; d != nil {
			d(batch[i].err)
		}
	}
	// The callbacks just woke the submitters waiting for them; let them run before taking the
	// next batch, so their next writes join it instead of trailing into the one after.
	runtime.Gosched()
}

// plan turns o into entries and applies its effect on the writer's in-memory state
// (refcounts, rset), remembering how to undo it if the commit fails.
func (w *writer) plan(o *op) {
	o.first = len(w.ents)
	defer func() { o.last = len(w.ents) }()
	if o.err != nil {
		return
	}
	if w.diskErr != nil && o.addsData() {
		o.err = w.diskErr
		return
	}
	switch o.kind {
	case opSet:
		w.ents = append(w.ents, ent{key: o.key, val: o.val, meta: o.meta})
	case opDel:
		w.ents = append(w.ents, ent{key: o.key, del: true})
	case opAppend:
		if o.msgID != 0 {
			sh, ok := w.refs[o.msgID]
			if !ok {
				o.err = fmt.Errorf("%w: Append refers to shared message %d, which has no body (or none left)",
					ErrInvalid, o.msgID)
				return
			}
			persistent := !sh.transient
			if o.hasMsg {
				persistent = o.persistent
			}
			o.meta = metaRef
			if !persistent {
				o.meta |= metaTransient
			}
			o.val = appendRef(o.val[:0], persistent, o.msgID, sh.size)
			w.overlay[o.ref] = o.msgID
		}
		w.ents = append(w.ents, ent{key: o.key, val: o.val, meta: o.meta})
	case opShared:
		prev, had := w.refs[o.msgID]
		o.undoRefs, o.undoHad, o.undoShared = true, had, prev
		w.refs[o.msgID] = shared{refs: o.n, size: o.size, transient: !o.persistent}
		w.ents = append(w.ents, ent{key: o.key, val: o.val})
	case opRemove:
		w.ents = append(w.ents, ent{key: o.key, del: true})
		if o.msgID != 0 {
			id, known := w.overlay[o.ref]
			if !known {
				id = w.committedRef(o.key)
			}
			w.overlay[o.ref] = 0
			if id == o.msgID {
				w.decRef(o)
			}
		}
		if _, ok := w.rset[o.ref]; ok {
			delete(w.rset, o.ref)
			o.undoR = 1
			w.ents = append(w.ents, ent{key: deliveriesKey(o.ref.QueueID, o.ref.Seq), del: true})
		}
	case opDeliveries:
		if _, ok := w.rset[o.ref]; !ok {
			w.rset[o.ref] = struct{}{}
			o.undoR = -1
		}
		w.ents = append(w.ents, ent{key: o.key, val: o.val})
	}
}

// decRef drops one reference to o.msgID, deleting the body with the last one.
func (w *writer) decRef(o *op) {
	sh, ok := w.refs[o.msgID]
	if !ok {
		return
	}
	o.undoRefs, o.undoHad, o.undoShared = true, true, sh
	if sh.refs <= 1 {
		delete(w.refs, o.msgID)
		w.ents = append(w.ents, ent{key: sharedKey(o.msgID), del: true})
		return
	}
	sh.refs--
	w.refs[o.msgID] = sh
}

func (w *writer) undo(o *op) {
	if o.undoRefs {
		if o.undoHad {
			w.refs[o.msgID] = o.undoShared
		} else {
			delete(w.refs, o.msgID)
		}
	}
	switch o.undoR {
	case 1:
		w.rset[o.ref] = struct{}{}
	case -1:
		delete(w.rset, o.ref)
	}
}

// committedRef returns the msgID the committed record under an 'M' key refers to: 0 if there
// is none, or it is inline. It reads a view taken once per batch; ops of the same batch are
// covered by w.overlay. Only a record that really holds the reference may drop it: a
// Remove of a record that is already gone (purged, its queue deleted, removed twice) or that
// was stored inline must leave the body's count alone.
func (w *writer) committedRef(key []byte) uint64 {
	if w.snap == nil {
		w.snap = w.db.NewTransaction(false)
	}
	item, err := w.snap.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0
	}
	var id uint64
	if err == nil && item.UserMeta()&metaRef != 0 {
		err = item.Value(func(v []byte) error {
			id, _, err = decodeRef(v)
			return err
		})
	}
	if err != nil {
		// Not decrementing leaks the body until the next Open recounts; decrementing
		// wrongly could delete a body another queue still needs.
		w.s.log.Warn().Err(err).Msg("store: reading a message record before removing it")
		return 0
	}
	return id
}

// commit writes the batch's entries in as few transactions as Badger allows, never splitting
// an op. When a transaction fails, it and every later op of the batch fail (their in-memory
// effects undone, newest first), so the ops that succeed are always a prefix.
func (w *writer) commit(batch []op) {
	for i := 0; i < len(batch); {
		j, err := w.commitFrom(batch, i)
		if err != nil {
			err = writeError(err)
			for k := len(batch) - 1; k >= i; k-- {
				w.undo(&batch[k])
			}
			for k := i; k < len(batch); k++ {
				if batch[k].err == nil {
					batch[k].err = err
				}
			}
			w.s.log.Error().Err(err).Int("ops", len(batch)-i).Msg("store: commit failed")
			return
		}
		i = j
	}
}

// commitFrom commits ops batch[i:j] in one transaction, j as large as fits.
func (w *writer) commitFrom(batch []op, i int) (int, error) {
	txn := w.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	j := i
	for ; j < len(batch); j++ {
		added, err := w.add(txn, &batch[j])
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrTxnTooBig) || j == i {
			return i, err
		}
		if added > 0 {
			// Part of op j went in: start over with ops i..j-1, which fit before.
			txn.Discard()
			txn = w.db.NewTransaction(true)
			for k := i; k < j; k++ {
				if _, err := w.add(txn, &batch[k]); err != nil {
					return i, err
				}
			}
		}
		break
	}
	t0 := time.Now()
	if err := txn.Commit(); err != nil {
		return i, err
	}
	w.commitNanos.Add(int64(time.Since(t0)))
	if batch[i].first != batch[j-1].last {
		var n int
		for k := i; k < j; k++ {
			n += batch[k].bytes()
		}
		w.committed(n)
		w.memTables.Add(tableBytes(w.ents[batch[i].first:batch[j-1].last]))
	}
	return j, nil
}

// tableBytes is at least what ents take in a level-0 table: per entry the key with Badger's
// 8-byte version, the value or, at valueThreshold and above, its 12-byte pointer, and 40 bytes
// for the entry's header, value metadata, block offset and bloom filter bits.
func tableBytes(ents []ent) int64 {
	var n int64
	for _, e := range ents {
		v := len(e.val)
		if v >= valueThreshold {
			v = 12
		}
		n += int64(len(e.key) + v + 48)
	}
	return n
}

// committed counts one Badger commit of about b bytes of keys and values. The page-out loop
// advises the files being written by the average (pageOutLoop), so every commit counts here,
// the background drops' deletes too.
func (w *writer) committed(b int) {
	w.commits.Add(1)
	w.commitBytes.Add(int64(b))
}

func (w *writer) add(txn *badger.Txn, o *op) (int, error) {
	for k := o.first; k < o.last; k++ {
		e := &w.ents[k]
		var err error
		if e.del {
			err = txn.Delete(e.key)
		} else {
			err = txn.SetEntry(badger.NewEntry(e.key, e.val).WithMeta(e.meta))
		}
		if err != nil {
			return k - o.first, err
		}
	}
	return o.last - o.first, nil
}

// writeError classifies a failed write.
func writeError(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return fmt.Errorf("store: commit: %w", err)
}
