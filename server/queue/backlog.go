package queue

import "container/heap"

// Backlog holds a queue's ready entries in delivery order. The queue calls it under its own
// lock, so an implementation needs no locking of its own. The in-memory MemBacklog keeps every
// entry; a PagedBacklog keeps a window in memory and pages the rest to the journal.
type Backlog interface {
	// Push appends a new entry; its Seq is higher than any entry pushed before.
	Push(e *Entry)
	// Requeue returns an entry that was delivered to its place by Seq.
	Requeue(e *Entry)
	// ReturnFront returns an entry that was delivered to the front: before every other ready
	// entry, behind those returned to the front before it (a quorum queue's returns).
	ReturnFront(e *Entry)
	// ReturnBack returns an entry that was delivered to the back: behind every entry with a
	// Seq up to after (the highest given out so far), ahead of later ones, behind those
	// returned to the back before it (a quorum queue's returns without a delivery limit).
	ReturnBack(e *Entry, after uint64)
	// Peek returns the next entry to deliver, or nil.
	Peek() *Entry
	// Pop removes and returns the next entry to deliver, or nil.
	Pop() *Entry
	// Len is the number of ready entries.
	Len() int
	// Bytes is the total body size of the ready entries.
	Bytes() int
	// Purge removes every ready entry, passes those held in memory to drop (which may be nil)
	// and returns how many there were.
	Purge(drop func(*Entry)) int
	// Expire removes up to limit in-memory entries whose deadline (Entry.Expires) is before
	// now, wherever they are in the order, and appends them to out.
	Expire(now int64, limit int, out []*Entry) []*Entry
	// NextExpiry is the earliest deadline among the in-memory entries, or 0.
	NextExpiry() int64
	// Remove takes an entry that is still ready out of the backlog, wherever it is in memory,
	// and reports whether it was there.
	Remove(e *Entry) bool
	// Spilled reports whether ready entries are waiting on disk (or on their way there)
	// because the in-memory window is full.
	Spilled() bool
	// Reading reports whether the next entry to deliver is on disk with a read of it
	// outstanding: Peek returns nil until the read is back.
	Reading() bool
}

// MemBacklog keeps every ready entry in memory: fresh entries in a ring in Seq order, requeued
// ones in a min-heap by Seq. The next entry is the lower Seq of the two heads, so a requeued
// message goes back to its original position without shifting the ring. Entries with a
// deadline are also in an expiry heap, so they can leave from anywhere in the order: they are
// marked gone and skipped when they reach a head.
type MemBacklog struct {
	front []*Entry // returned to the front (ReturnFront), in return order; before all others
	// back are the entries returned to the back (ReturnBack), in return order; back[i] goes
	// after every entry with a Seq up to backAfter[i].
	back      []*Entry
	backAfter []uint64
	ring      []*Entry
	head      int
	n         int // ring slots in use, gone entries included
	requeued  seqHeap
	expiring  expiryHeap
	live      int
	bytes     int
}

// NewMemBacklog returns an empty in-memory backlog.
func NewMemBacklog() *MemBacklog { return &MemBacklog{} }

func (b *MemBacklog) add(e *Entry) {
	b.live++
	b.bytes += e.Msg.Size()
	if e.Expires != 0 {
		heap.Push(&b.expiring, e)
	}
}

// Push implements Backlog.
func (b *MemBacklog) Push(e *Entry) {
	if b.n == len(b.ring) {
		b.grow()
	}
	b.ring[(b.head+b.n)%len(b.ring)] = e
	b.n++
	b.add(e)
}

func (b *MemBacklog) grow() {
	size := 2 * len(b.ring)
	if size == 0 {
		size = 16
	}
	ring := make([]*Entry, size)
	for i := 0; i < b.n; i++ {
		ring[i] = b.ring[(b.head+i)%len(b.ring)]
	}
	b.ring, b.head = ring, 0
}

// Requeue implements Backlog.
func (b *MemBacklog) Requeue(e *Entry) {
	e.gone = false
	heap.Push(&b.requeued, e)
	b.add(e)
}

// ReturnFront implements Backlog.
func (b *MemBacklog) ReturnFront(e *Entry) {
	e.gone = false
	b.front = append(b.front, e)
	b.add(e)
}

// ReturnBack implements Backlog.
func (b *MemBacklog) ReturnBack(e *Entry, after uint64) {
	e.gone = false
	b.back = append(b.back, e)
	b.backAfter = append(b.backAfter, after)
	b.add(e)
}

// popBack removes the first entry returned to the back.
func (b *MemBacklog) popBack() *Entry {
	e := b.back[0]
	b.back[0] = nil
	b.back, b.backAfter = b.back[1:], b.backAfter[1:]
	if len(b.back) == 0 {
		b.back, b.backAfter = nil, nil
	}
	return e
}

// ordered returns the next entry in Seq order (ring or requeued), ignoring those returned to
// the front or the back, or nil. The caller has run skipGone.
func (b *MemBacklog) ordered() *Entry {
	if len(b.requeued) > 0 && (b.n == 0 || b.requeued[0].Seq < b.ring[b.head].Seq) {
		return b.requeued[0]
	}
	if b.n == 0 {
		return nil
	}
	return b.ring[b.head]
}

// backDue says the first entry returned to the back goes next, ahead of o, the next entry in
// Seq order (nil if none in memory).
func (b *MemBacklog) backDue(o *Entry) bool {
	return len(b.back) > 0 && (o == nil || o.Seq > b.backAfter[0])
}

// backWaits says the next entry is one returned to the back that must wait for entries not
// in memory: nothing in Seq order is left here, and the ones on disk start after cursor.
func (b *MemBacklog) backWaits(cursor uint64) bool {
	b.skipGone()
	return len(b.front) == 0 && b.ordered() == nil && len(b.back) > 0 && b.backAfter[0] > cursor
}

// popFront removes the first entry returned to the front.
func (b *MemBacklog) popFront() *Entry {
	e := b.front[0]
	b.front[0] = nil
	b.front = b.front[1:]
	if len(b.front) == 0 {
		b.front = nil
	}
	return e
}

// skipGone drops entries that left from the middle once they reach a head.
func (b *MemBacklog) skipGone() {
	for len(b.front) > 0 && b.front[0].gone {
		b.popFront()
	}
	for len(b.back) > 0 && b.back[0].gone {
		b.popBack()
	}
	for len(b.requeued) > 0 && b.requeued[0].gone {
		heap.Pop(&b.requeued)
	}
	for b.n > 0 && b.ring[b.head].gone {
		b.ring[b.head] = nil
		b.head = (b.head + 1) % len(b.ring)
		b.n--
	}
}

// Peek implements Backlog.
func (b *MemBacklog) Peek() *Entry {
	b.skipGone()
	if len(b.front) > 0 {
		return b.front[0]
	}
	o := b.ordered()
	if b.backDue(o) {
		return b.back[0]
	}
	return o
}

// Pop implements Backlog.
func (b *MemBacklog) Pop() *Entry {
	b.skipGone()
	var e *Entry
	if len(b.front) > 0 {
		e = b.popFront()
	} else if b.backDue(b.ordered()) {
		e = b.popBack()
	} else if len(b.requeued) > 0 && (b.n == 0 || b.requeued[0].Seq < b.ring[b.head].Seq) {
		e = heap.Pop(&b.requeued).(*Entry)
	} else if b.n > 0 {
		e = b.ring[b.head]
		b.ring[b.head] = nil
		b.head = (b.head + 1) % len(b.ring)
		b.n--
	} else {
		return nil
	}
	b.taken(e)
	return e
}

// taken accounts for an entry leaving the backlog.
func (b *MemBacklog) taken(e *Entry) {
	b.live--
	b.bytes -= e.Msg.Size()
	if e.expIdx != 0 {
		heap.Remove(&b.expiring, e.expIdx-1)
	}
}

// Expire implements Backlog.
func (b *MemBacklog) Expire(now int64, limit int, out []*Entry) []*Entry {
	for n := 0; n < limit && len(b.expiring) > 0 && b.expiring[0].Expires < now; n++ {
		e := b.expiring[0]
		b.taken(e)
		e.gone = true
		out = append(out, e)
	}
	return out
}

// NextExpiry implements Backlog.
func (b *MemBacklog) NextExpiry() int64 {
	if len(b.expiring) == 0 {
		return 0
	}
	return b.expiring[0].Expires
}

// Len implements Backlog.
func (b *MemBacklog) Len() int { return b.live }

// Bytes implements Backlog.
func (b *MemBacklog) Bytes() int { return b.bytes }

// Spilled implements Backlog: a MemBacklog never pages.
func (b *MemBacklog) Spilled() bool { return false }

// Reading implements Backlog: a MemBacklog never reads.
func (b *MemBacklog) Reading() bool { return false }

// Purge implements Backlog.
func (b *MemBacklog) Purge(drop func(*Entry)) int {
	n := 0
	for e := b.Pop(); e != nil; e = b.Pop() {
		if drop != nil {
			drop(e)
		}
		n++
	}
	b.ring, b.head, b.n = nil, 0, 0
	return n
}

// seqHeap is a min-heap of entries by Seq.
type seqHeap []*Entry

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i].Seq < h[j].Seq }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(*Entry)) }
func (h *seqHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// expiryHeap is a min-heap of entries by deadline; each entry knows its index (expIdx-1), so it
// can leave from the middle when it is delivered.
type expiryHeap []*Entry

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	return h[i].Expires < h[j].Expires || (h[i].Expires == h[j].Expires && h[i].Seq < h[j].Seq)
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].expIdx, h[j].expIdx = i+1, j+1
}
func (h *expiryHeap) Push(x any) {
	e := x.(*Entry)
	e.expIdx = len(*h) + 1
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.expIdx = 0
	*h = old[:len(old)-1]
	return e
}

// newestFirst calls fn with the ring's live entries from the newest, until fn returns false.
func (b *MemBacklog) newestFirst(fn func(e *Entry) bool) {
	for i := b.n - 1; i >= 0; i-- {
		e := b.ring[(b.head+i)%len(b.ring)]
		if e.gone {
			continue
		}
		if !fn(e) {
			return
		}
	}
}

// popNewest removes the ring's newest live entry (dropping gone ones on the way) and returns
// it, or nil.
func (b *MemBacklog) popNewest() *Entry {
	for b.n > 0 {
		i := (b.head + b.n - 1) % len(b.ring)
		e := b.ring[i]
		b.ring[i] = nil
		b.n--
		if !e.gone {
			b.taken(e)
			return e
		}
	}
	return nil
}

// maxRequeuedSeq is the highest Seq among the requeued entries, 0 if none.
func (b *MemBacklog) maxRequeuedSeq() uint64 {
	var m uint64
	for _, e := range b.requeued {
		if !e.gone {
			m = max(m, e.Seq)
		}
	}
	return m
}
