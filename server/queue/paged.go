package queue

// Journal persists a queue's entries. The store satisfies it through a small adapter in the
// server package. The queue calls it with its lock held, so no method may block and no done
// callback may run before its method returns: writes are submitted to a group-commit writer,
// whose done callbacks run later on the writer's goroutine, and reads are requested, their
// results handed back later on another goroutine (see pagein.go).
type Journal interface {
	// Append submits a record of e. durable says whether it must survive a restart (a
	// persistent message in a durable queue); entries paged out under memory pressure are
	// written non-durable. done, which may be nil, runs once the record is durable, or with
	// the error.
	Append(e *Entry, durable bool, done func(error))
	// Remove submits the deletion of e's record.
	Remove(e *Entry)
	// SetDeliveries records that e was delivered, and how often, so a restart can mark it
	// redelivered.
	SetDeliveries(e *Entry)
	// Read requests up to maxCount committed entries (and roughly maxBytes of bodies) with
	// Seq > after, in Seq order, with Stored set. It returns at once; done runs later, once, on
	// a goroutine that holds none of the queue's locks, with the entries or the error.
	Read(after uint64, maxCount, maxBytes int, done func([]*Entry, error))
	// Drop submits the deletion of every record with after < Seq <= through.
	Drop(after, through uint64)
}

// Window bounds the entries a PagedBacklog keeps in memory.
type Window struct {
	Count int
	Bytes int
}

// PagedBacklog keeps a window of ready entries in memory and the rest in the journal, read
// back in order as the window drains (RabbitMQ's lazy queues, CQv2).
//
// Entries are in Seq order across four regions: the head, in memory; entries on disk only
// (counted, not held); entries paged out whose records may not be durable yet (held until the
// journal confirms them, because only committed records can be read back); and the tail, in
// memory again: entries that arrived behind the disk regions while the head and tail together
// were under the window. The tail is what keeps a queue whose consumers run a little behind
// its publishers from sending every message through the disk: only what exceeds the window is
// written (the oldest tail entries first, so order holds), and once the disk regions are read
// back the tail joins the head. RabbitMQ's classic queues keep the same shape (q1 behind delta).
type PagedBacklog struct {
	j   Journal
	win Window
	mem MemBacklog

	diskCount int
	diskBytes int
	// cursor is the highest Seq not in the disk regions: every record with a higher Seq is on
	// disk or pending, in order.
	cursor uint64
	// lastPaged is the highest Seq ever paged out.
	lastPaged uint64

	pending      []*Entry
	pendingBytes int

	// tail holds the entries behind the disk regions; it is empty whenever they are.
	tail MemBacklog

	// reading is set while a read-back is outstanding; readGen numbers the reads, so one
	// that purge or trim made stale is dropped when it comes back. readDone takes a read's
	// result back (the queue sets it: it takes the queue's lock and calls Fill).
	reading  bool
	readGen  uint64
	readDone func(b *PagedBacklog, gen uint64, es []*Entry, err error)
	// readErr is the last error reading the journal back; entries stay on disk and no read is
	// requested until RetryRead (the queue calls it after retryDelay). readFailures counts the
	// failed reads in a row.
	readErr      error
	readFailures int

	// skip are the Seqs of withdrawn entries whose records may still be read back (their
	// removal is submitted, maybe not yet committed); nil when there are none. See held.go.
	skip map[uint64]struct{}
}

// NewPagedBacklog returns a backlog that keeps at most win in memory and pages the rest to j.
func NewPagedBacklog(j Journal, win Window) *PagedBacklog {
	return &PagedBacklog{j: j, win: win}
}

// Restore tells the backlog that count records (bytes of bodies) with Seq > after are already
// on disk: a queue recovered at start.
func (b *PagedBacklog) Restore(count, bytes int, after, last uint64) {
	b.diskCount, b.diskBytes = count, bytes
	b.cursor, b.lastPaged = after, last
}

// fits reports whether an entry of size bytes fits the window beside the head and the tail.
func (b *PagedBacklog) fits(size int) bool {
	return b.mem.Len()+b.tail.Len() < b.win.Count && b.mem.Bytes()+b.tail.Bytes()+size <= b.win.Bytes
}

// Push implements Backlog.
func (b *PagedBacklog) Push(e *Entry) {
	size := e.Msg.Size()
	if !b.Spilled() {
		if b.fits(size) || b.mem.Len() == 0 {
			b.mem.Push(e)
			b.cursor = e.Seq
			return
		}
	} else {
		// Behind the disk regions: keep e in the tail. While the window has no room, the
		// oldest tail entries go out for it, no more than make room for e, so memory over the
		// window (after a read-back larger than the room) stays over by no more.
		freedN, freedB := 0, 0
		for b.tail.Len() > 0 && !b.fits(size) && (freedN == 0 || freedB < size) {
			t := b.tail.Pop()
			freedN++
			freedB += t.Msg.Size()
			b.pageOut(t)
		}
		if b.fits(size) || (freedN > 0 && freedB >= size) {
			b.tail.Push(e)
			return
		}
	}
	b.pageOut(e)
}

// pageOut appends e, the newest entry outside the disk regions, to them: its record is written
// unless it already has one (a persistent entry in a durable queue).
func (b *PagedBacklog) pageOut(e *Entry) {
	if !e.Stored {
		e.Stored = true
		b.j.Append(e, false, func(err error) {
			if err == nil {
				e.committed.Store(true)
			}
		})
	}
	b.pending = append(b.pending, e)
	b.pendingBytes += e.Msg.Size()
	b.lastPaged = e.Seq
	b.settlePending()
}

// settlePending forgets the pending entries whose records are durable: they are on disk now.
// Records commit in submission order, so the committed ones are a prefix. A held entry stays:
// it may yet be withdrawn, which only an entry in memory can be.
func (b *PagedBacklog) settlePending() {
	n := 0
	for n < len(b.pending) && b.pending[n].committed.Load() && !b.pending[n].held {
		b.diskCount++
		b.diskBytes += b.pending[n].Msg.Size()
		b.pendingBytes -= b.pending[n].Msg.Size()
		n++
	}
	if n > 0 {
		clear(b.pending[:n])
		b.pending = b.pending[n:]
	}
}

// Reading the disk back takes at least pageInMin entries (or pageInMinBytes of bodies; the
// window, if smaller) at a time, even when the tail leaves less room in the window, so a full
// tail does not turn the read-back into one journal read per message. The window can be
// exceeded by that much.
const (
	pageInMin      = 256
	pageInMinBytes = 1 << 20
)

// pageIn refills the empty head: from the pending entries when nothing committed is left on
// disk, joined by the tail once the disk regions are empty; otherwise it requests a read of the
// disk's head, which Fill takes in later.
func (b *PagedBacklog) pageIn() {
	b.settlePending()
	if b.diskCount > 0 {
		b.requestRead()
		return
	}
	// The pending entries are in memory already: all of them join the head.
	for _, e := range b.pending {
		b.cursor = e.Seq
		b.mem.Push(e)
	}
	clear(b.pending)
	b.pending, b.pendingBytes = b.pending[:0], 0
	b.joinTail()
}

// joinTail moves the tail to the head once nothing is left on disk or pending.
func (b *PagedBacklog) joinTail() {
	if b.Spilled() {
		return
	}
	for e := b.tail.Pop(); e != nil; e = b.tail.Pop() {
		b.cursor = e.Seq
		b.mem.Push(e)
	}
}

// Requeue implements Backlog: a returned entry goes back to the window, wherever its Seq.
func (b *PagedBacklog) Requeue(e *Entry) { b.mem.Requeue(e) }

// ReturnFront implements Backlog: the entry goes to the front of the window.
func (b *PagedBacklog) ReturnFront(e *Entry) { b.mem.ReturnFront(e) }

// ReturnBack implements Backlog: the entry waits in the window until every entry up to after,
// on disk ones included, has been delivered.
func (b *PagedBacklog) ReturnBack(e *Entry, after uint64) { b.mem.ReturnBack(e, after) }

// Peek implements Backlog. With the head empty (or holding only entries returned to the back
// that go after some on disk) and entries on disk it requests their read and returns nil: the
// entries come in with Fill.
func (b *PagedBacklog) Peek() *Entry {
	if b.Spilled() && (b.mem.Len() == 0 || b.mem.backWaits(b.cursor)) {
		b.pageIn()
		if b.mem.backWaits(b.cursor) {
			return nil
		}
	}
	return b.mem.Peek()
}

// readAhead: once the head holds fewer entries than this while more wait on disk, the next
// read is requested, so it runs while the head is delivered instead of after (a consumer
// keeping up with a spilled queue otherwise waits for every read).
const readAhead = pageInMin

// Pop implements Backlog.
func (b *PagedBacklog) Pop() *Entry {
	if b.Peek() == nil {
		return nil
	}
	e := b.mem.Pop()
	if b.mem.Len() < readAhead && (b.diskCount > 0 || len(b.pending) > 0) && !b.reading {
		b.settlePending()
		if b.diskCount > 0 {
			b.requestRead()
		}
	}
	return e
}

// Len implements Backlog.
func (b *PagedBacklog) Len() int { return b.mem.Len() + b.diskCount + len(b.pending) + b.tail.Len() }

// Bytes implements Backlog.
func (b *PagedBacklog) Bytes() int {
	return b.mem.Bytes() + b.diskBytes + b.pendingBytes + b.tail.Bytes()
}

// Spilled implements Backlog.
func (b *PagedBacklog) Spilled() bool { return b.diskCount > 0 || len(b.pending) > 0 }

// InMemory is the number of ready entries whose bodies are in memory.
func (b *PagedBacklog) InMemory() int { return b.mem.Len() + len(b.pending) + b.tail.Len() }

// Purge implements Backlog. The head's, pending and tail entries are passed to drop; the
// records on disk are dropped by range.
func (b *PagedBacklog) Purge(drop func(*Entry)) int {
	n := b.mem.Purge(drop)
	if b.diskCount > 0 || len(b.pending) > 0 {
		n += b.diskCount + len(b.pending)
		// Pending records were submitted before this Drop, so the journal deletes them too.
		b.j.Drop(b.cursor, b.lastPaged)
		clear(b.pending)
		b.pending, b.pendingBytes = nil, 0
		b.diskCount, b.diskBytes = 0, 0
		b.cursor = b.lastPaged
		b.skip = nil
		b.disownRead()
	}
	return n + b.tail.Purge(drop)
}

// Expire implements Backlog. The head's and the tail's entries are tracked; an entry on disk is
// checked when it is read back (the queue pages in the head of a queue with a TTL when its
// window is empty, so a queue-wide TTL still expires the oldest first).
func (b *PagedBacklog) Expire(now int64, limit int, out []*Entry) []*Entry {
	n := len(out)
	out = b.mem.Expire(now, limit, out)
	return b.tail.Expire(now, limit-(len(out)-n), out)
}

// NextExpiry implements Backlog.
func (b *PagedBacklog) NextExpiry() int64 {
	h, t := b.mem.NextExpiry(), b.tail.NextExpiry()
	if h == 0 || (t != 0 && t < h) {
		return t
	}
	return h
}
