package queue

// Reading the disk back, in the spirit of etcd raft's Ready/Advance: the queue never waits for
// the journal under its lock. When a paged backlog's head runs low with entries on disk, Pop
// requests the next read (readAhead), so it overlaps the delivery of what is left; a head that
// runs empty anyway makes Peek request one (Journal.Read returns at once) and return nil; the journal hands the entries
// back later, on another goroutine, to Queue.readBack, which takes the lock, appends them to the
// head (Fill) and delivers. Meanwhile the queue delivers what it holds in memory (requeued
// entries, lower priority levels never overtake a higher one waiting for its read), counts the
// entries on disk as ready, and basic.get waits for the read without the lock (Get).
//
// A read made stale by a purge, a delete or a trim that moved the disk's front is dropped when
// it comes back (readGen). A failed read leaves the entries on disk; the queue asks again
// after readRetry, doubled after each failure in a row up to readRetryMax, so a failing disk is
// neither read nor logged in a tight loop.

// readRetry is how long after a failed read-back the queue reads again, in milliseconds, and
// readRetryMax the longest it waits after failures in a row.
const (
	readRetry    = 100
	readRetryMax = 10_000
)

// Reading implements Backlog.
func (b *PagedBacklog) Reading() bool {
	return b.reading && (b.mem.Len() == 0 || b.mem.backWaits(b.cursor))
}

// requestRead asks the journal for the disk's head, unless a read is outstanding or the last
// one failed. The room is what the head and the tail leave of the window, and at least
// pageInMin (see paged.go).
func (b *PagedBacklog) requestRead() {
	if b.reading || b.readErr != nil || b.readDone == nil {
		return
	}
	inMem, inMemBytes := b.mem.Len()+b.tail.Len(), b.mem.Bytes()+b.tail.Bytes()
	count := min(b.diskCount, max(b.win.Count-inMem, min(pageInMin, b.win.Count)))
	bytes := max(b.win.Bytes-inMemBytes, min(pageInMinBytes, b.win.Bytes))
	b.reading = true
	b.readGen++
	gen, done := b.readGen, b.readDone
	b.j.Read(b.cursor, count, bytes, func(es []*Entry, err error) { done(b, gen, es, err) })
}

// disownRead makes an outstanding read stale: the disk regions it was reading changed.
func (b *PagedBacklog) disownRead() {
	if b.reading {
		b.reading = false
		b.readGen++
	}
}

// Fill takes in the result of read gen (the queue's lock held): the entries join the head, in
// order, passing over withdrawn ones. It reports false for a stale read, whose result is
// dropped. After an error nothing is read until RetryRead.
func (b *PagedBacklog) Fill(gen uint64, es []*Entry, err error) bool {
	if !b.reading || gen != b.readGen {
		return false
	}
	b.reading = false
	b.readErr = err
	if err != nil {
		b.readFailures++
		return true
	}
	b.readFailures = 0
	for _, e := range es {
		if b.diskCount == 0 {
			break // the rest are pending entries that committed meanwhile
		}
		if e.Seq <= b.cursor {
			continue
		}
		if _, ok := b.skip[e.Seq]; ok {
			b.cursor = e.Seq // withdrawn: not counted on disk, never delivered
			continue
		}
		b.diskCount--
		b.diskBytes -= e.Msg.Size()
		b.cursor = e.Seq
		e.committed.Store(true)
		b.mem.Push(e)
	}
	if b.diskCount > 0 && len(es) == 0 {
		// The index promised more than the journal holds (records lost to a failed write);
		// forget the difference rather than read forever.
		b.diskCount = 0
	}
	if b.diskCount == 0 {
		// A recovered queue's byte count comes from record sizes, which include more than
		// bodies: do not let the difference linger.
		b.diskBytes = 0
	}
	b.forgetSkipped()
	b.joinTail()
	return true
}

// RetryRead lets the backlog read again after a failed read.
func (b *PagedBacklog) RetryRead() { b.readErr = nil }

// retryDelay is how long to wait before reading again after the failures in a row so far.
func (b *PagedBacklog) retryDelay() int64 {
	return min(int64(readRetry)<<min(max(b.readFailures-1, 0), 16), readRetryMax)
}

// readBack is every paged backlog's readDone: it runs on the journal's goroutine, takes the
// lock, takes the entries in and delivers them.
func (q *Queue) readBack(b *PagedBacklog, gen uint64, es []*Entry, err error) {
	q.mu.Lock()
	defer q.unlock()
	q.wakeReaders()
	if q.deleted {
		return
	}
	now := q.clock.Now()
	if q.f.HasTTL {
		// A record written without a deadline (a body shared by several durable queues keeps
		// only the message's own) gets the queue's from now; an x-message-ttl of 0 expires
		// it at once.
		ttl := max(q.f.MessageTTL.Milliseconds(), 1)
		for _, e := range es {
			if e.Expires == 0 {
				e.Expires = now + ttl
			}
		}
	}
	if !b.Fill(gen, es, err) {
		return
	}
	if err != nil {
		q.clock.At(now+b.retryDelay(), func() { q.retryRead(b) })
		return
	}
	q.enforceLimitLocked() // a drop-head limit waits for the head to be read
	q.dispatchLocked(now)
	q.scheduleLocked()
}

// retryRead reads again after a failed read-back.
func (q *Queue) retryRead(b *PagedBacklog) {
	q.mu.Lock()
	defer q.unlock()
	if q.deleted {
		return
	}
	b.RetryRead()
	q.dispatchLocked(q.clock.Now())
	q.scheduleLocked()
}

// wakeReaders releases the Get calls waiting for a read-back (q.mu held).
func (q *Queue) wakeReaders() {
	if q.readWait != nil {
		close(q.readWait)
		q.readWait = nil
	}
}
