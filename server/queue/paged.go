package queue

// Journal persists a queue's entries. The store satisfies it through a small adapter in the
// server package. The queue calls it with its lock held, so no method may block: writes are
// submitted to a group-commit writer, and done callbacks run later on the writer's goroutine.
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
	// Read returns up to maxCount committed entries (and roughly maxBytes of bodies) with
	// Seq > after, in Seq order, with Stored set.
	Read(after uint64, maxCount, maxBytes int) ([]*Entry, error)
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
// Entries are in Seq order across three regions: the in-memory window; entries on disk only
// (counted, not held); entries paged out whose records may not be durable yet (held until the
// journal confirms them, because only committed records can be read back). Once anything is
// paged out, new entries follow it out until the disk regions drain, so order holds.
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

	// readErr is the last error reading the journal back; entries stay on disk and the read
	// is retried at the next Peek.
	readErr error
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

func (b *PagedBacklog) fits(size int) bool {
	return b.mem.Len() < b.win.Count && b.mem.Bytes()+size <= b.win.Bytes
}

// Push implements Backlog.
func (b *PagedBacklog) Push(e *Entry) {
	if b.diskCount == 0 && len(b.pending) == 0 && (b.fits(e.Msg.Size()) || b.mem.Len() == 0) {
		b.mem.Push(e)
		b.cursor = e.Seq
		return
	}
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
// Records commit in submission order, so the committed ones are a prefix.
func (b *PagedBacklog) settlePending() {
	n := 0
	for n < len(b.pending) && b.pending[n].committed.Load() {
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

// pageIn refills the window from disk, or from the pending entries when nothing committed is
// left on disk.
func (b *PagedBacklog) pageIn() {
	b.settlePending()
	if b.diskCount > 0 {
		es, err := b.j.Read(b.cursor, min(b.win.Count, b.diskCount), b.win.Bytes)
		b.readErr = err
		if err != nil {
			return
		}
		for _, e := range es {
			if b.diskCount == 0 {
				break // the rest are pending entries that committed meanwhile
			}
			b.diskCount--
			b.diskBytes -= e.Msg.Size()
			b.cursor = e.Seq
			e.committed.Store(true)
			b.mem.Push(e)
		}
		if b.diskCount > 0 && len(es) == 0 {
			// The index promised more than the journal holds (records lost to a failed write);
			// forget the difference rather than spin.
			b.diskCount = 0
		}
		if b.diskCount == 0 {
			// A recovered queue's byte count comes from record sizes, which include more than
			// bodies: do not let the difference linger.
			b.diskBytes = 0
		}
		return
	}
	n := 0
	for n < len(b.pending) && (n == 0 || b.fits(b.pending[n].Msg.Size())) {
		e := b.pending[n]
		b.pendingBytes -= e.Msg.Size()
		b.cursor = e.Seq
		b.mem.Push(e)
		n++
	}
	clear(b.pending[:n])
	b.pending = b.pending[n:]
}

// Requeue implements Backlog: a returned entry goes back to the window, wherever its Seq.
func (b *PagedBacklog) Requeue(e *Entry) { b.mem.Requeue(e) }

// Peek implements Backlog.
func (b *PagedBacklog) Peek() *Entry {
	if b.mem.Len() == 0 && (b.diskCount > 0 || len(b.pending) > 0) {
		b.pageIn()
	}
	return b.mem.Peek()
}

// Pop implements Backlog.
func (b *PagedBacklog) Pop() *Entry {
	if b.Peek() == nil {
		return nil
	}
	return b.mem.Pop()
}

// Len implements Backlog.
func (b *PagedBacklog) Len() int { return b.mem.Len() + b.diskCount + len(b.pending) }

// Bytes implements Backlog.
func (b *PagedBacklog) Bytes() int { return b.mem.Bytes() + b.diskBytes + b.pendingBytes }

// Spilled implements Backlog.
func (b *PagedBacklog) Spilled() bool { return b.diskCount > 0 || len(b.pending) > 0 }

// InMemory is the number of ready entries whose bodies are in memory.
func (b *PagedBacklog) InMemory() int { return b.mem.Len() + len(b.pending) }

// Purge implements Backlog. The window's and pending entries are passed to drop; the records on
// disk are dropped by range.
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
	}
	return n
}

// Expire implements Backlog. Only the window's entries are tracked: an entry on disk is checked
// when it is read back (the queue pages in the head of a queue with a TTL when its window is
// empty, so a queue-wide TTL still expires in order).
func (b *PagedBacklog) Expire(now int64, limit int, out []*Entry) []*Entry {
	return b.mem.Expire(now, limit, out)
}

// NextExpiry implements Backlog.
func (b *PagedBacklog) NextExpiry() int64 { return b.mem.NextExpiry() }
