package queue

// Shrinking the window under memory pressure. The broker's memory alarm gives every queue a
// smaller window and calls Trim until what the queues hold in memory fits it, so a backlog
// spread over many queues pages out instead of exhausting memory (RabbitMQ pages queues out
// from half its memory watermark for the same reason).

// windowed is a backlog whose window can change.
type windowed interface {
	SetWindow(w Window)
	Trim() (waiting bool)
}

// SetWindow changes the queue's in-memory window (of each priority level) and pages out what
// it holds beyond the new one, as far as it can at once; see Trim.
func (q *Queue) SetWindow(w Window) (waiting bool) {
	q.mu.Lock()
	defer q.unlock()
	q.win = w
	b, ok := q.backlog.(windowed)
	if !ok {
		return false
	}
	b.SetWindow(w)
	return b.Trim()
}

// Trim pages out what the queue holds in memory beyond its window. It reports whether entries
// are still waiting for their records to become durable before they can leave memory: call it
// again later.
func (q *Queue) Trim() (waiting bool) {
	q.mu.Lock()
	defer q.unlock()
	if b, ok := q.backlog.(windowed); ok {
		return b.Trim()
	}
	return false
}

// SetWindow implements windowed for each level.
func (b *PriorityBacklog) SetWindow(w Window) {
	for _, l := range b.levels {
		if wb, ok := l.(windowed); ok {
			wb.SetWindow(w)
		}
	}
}

// Trim implements windowed for each level.
func (b *PriorityBacklog) Trim() (waiting bool) {
	for _, l := range b.levels {
		if wb, ok := l.(windowed); ok && wb.Trim() {
			waiting = true
		}
	}
	return waiting
}

// SetWindow changes the window. New entries see it at once; Trim pages out what is already in
// memory beyond it.
func (b *PagedBacklog) SetWindow(w Window) { b.win = w }

// over reports whether the head and the tail together hold more than the window.
func (b *PagedBacklog) over() bool {
	return b.mem.Len()+b.tail.Len() > b.win.Count || b.mem.Bytes()+b.tail.Bytes() > b.win.Bytes
}

// trimChunk bounds the bytes of bodies one Trim call writes records for.
const trimChunk = 256 << 10

// Trim pages out what the backlog holds in memory beyond its window: first the tail, oldest
// first, as Push does; then the newest entries of the head, which join the front of the disk
// regions. A head entry can only leave once its record is durable (the disk regions are read
// back from the journal, in order), so Trim writes a record for each entry that must go and
// has none (up to trimChunk bytes a call), and moves entries from the newest end for as long as their records are durable.
// It reports whether entries are still waiting for their records.
func (b *PagedBacklog) Trim() (waiting bool) {
	b.settlePending()
	for b.tail.Len() > 0 && b.over() {
		b.pageOut(b.tail.Pop())
	}
	if !b.over() {
		return false
	}
	// Which head entries must go: from the newest, until the rest fits. Requeued entries stay
	// (they are few, and their position is among entries already delivered).
	floor := b.mem.maxRequeuedSeq()
	n, bytes := b.mem.Len(), b.mem.Bytes()
	var leave []*Entry
	b.mem.newestFirst(func(e *Entry) bool {
		if (n <= b.win.Count && bytes <= b.win.Bytes) || e.Seq <= floor {
			return false
		}
		leave = append(leave, e)
		n--
		bytes -= e.Msg.Size()
		return true
	})
	// Records are written a chunk per call, so many queues trimmed at once do not double
	// what they hold in memory with the copies waiting for the store's writer.
	submitted := 0
	for _, e := range leave {
		if submitted >= trimChunk {
			break
		}
		if !e.Stored {
			submitted += e.Msg.Size()
			e.Stored = true
			b.j.Append(e, false, func(err error) {
				if err == nil {
					e.committed.Store(true)
				}
			})
		}
	}
	for _, e := range leave {
		if !e.committed.Load() || e.held {
			return true
		}
		b.mem.popNewest()
		b.disownRead() // the disk's front moves back: a read of it is stale
		b.diskCount++
		b.diskBytes += e.Msg.Size()
		b.cursor = e.Seq - 1
		b.lastPaged = max(b.lastPaged, e.Seq)
	}
	return false
}
