package queue

import "container/heap"

// Backlog holds a queue's ready entries in delivery order. The queue calls it under its own
// lock, so an implementation needs no locking of its own. The in-memory MemBacklog keeps every
// entry; a store-backed backlog keeps a window in memory and pages the rest.
type Backlog interface {
	// Push appends a new entry; its Seq is higher than any entry pushed before.
	Push(e *Entry)
	// Requeue returns an entry that was delivered to its place by Seq.
	Requeue(e *Entry)
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
}

// MemBacklog keeps every ready entry in memory: fresh entries in a ring in Seq order, requeued
// ones in a min-heap by Seq. The next entry is the lower Seq of the two heads, so a requeued
// message goes back to its original position without shifting the ring.
type MemBacklog struct {
	ring     []*Entry
	head     int
	n        int
	requeued seqHeap
	bytes    int
}

// NewMemBacklog returns an empty in-memory backlog.
func NewMemBacklog() *MemBacklog { return &MemBacklog{} }

// Push implements Backlog.
func (b *MemBacklog) Push(e *Entry) {
	if b.n == len(b.ring) {
		b.grow()
	}
	b.ring[(b.head+b.n)%len(b.ring)] = e
	b.n++
	b.bytes += e.Msg.Size()
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
	heap.Push(&b.requeued, e)
	b.bytes += e.Msg.Size()
}

// Peek implements Backlog.
func (b *MemBacklog) Peek() *Entry {
	if len(b.requeued) > 0 && (b.n == 0 || b.requeued[0].Seq < b.ring[b.head].Seq) {
		return b.requeued[0]
	}
	if b.n == 0 {
		return nil
	}
	return b.ring[b.head]
}

// Pop implements Backlog.
func (b *MemBacklog) Pop() *Entry {
	var e *Entry
	if len(b.requeued) > 0 && (b.n == 0 || b.requeued[0].Seq < b.ring[b.head].Seq) {
		e = heap.Pop(&b.requeued).(*Entry)
	} else if b.n > 0 {
		e = b.ring[b.head]
		b.ring[b.head] = nil
		b.head = (b.head + 1) % len(b.ring)
		b.n--
	} else {
		return nil
	}
	b.bytes -= e.Msg.Size()
	return e
}

// Len implements Backlog.
func (b *MemBacklog) Len() int { return b.n + len(b.requeued) }

// Bytes implements Backlog.
func (b *MemBacklog) Bytes() int { return b.bytes }

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
