package queue

import "container/heap"

// Held entries. A publisher that asked for confirms is told basic.nack when a write of its
// message fails, and a nacked message must never reach a consumer. So while such a publish is
// waiting for its writes, its entries are held: they keep their place in the order but are not
// delivered (delivery and basic.get stop at a held head), and they do not leave memory for the
// disk regions. Once every write of the publish is durable the publisher's caller releases
// them; when one failed it withdraws them from every queue the message went to. The price is
// that such a message reaches consumers after its group commit, as a quorum queue's does.

// PublishHeld is Publish for a message whose publisher waits for a confirm: the entry is held
// until Release or Withdraw, which the caller must call exactly once when res is Enqueued.
// held is the entry to pass them (nil unless res is Enqueued).
func (q *Queue) PublishHeld(m *Message, done func(error)) (res Result, held *Entry, written bool) {
	return q.publish(m, done, true)
}

// Release makes held entries deliverable: every write of their publishes is durable. An
// entry that died while held (expired, dropped by a length limit) is dead-lettered now; one
// with a TTL of 0 gets its one chance at a waiting consumer. Releasing many at once takes the
// lock once.
func (q *Queue) Release(es ...*Entry) {
	q.mu.Lock()
	defer q.unlock()
	zeroTTL := false
	for _, e := range es {
		e.held = false
		if e.heldDeath != "" {
			q.dead = append(q.dead, Dead{Entry: e, Reason: e.heldDeath})
			e.heldDeath = ""
			continue
		}
		zeroTTL = zeroTTL || e.zeroTTL
	}
	if q.deleted {
		return
	}
	q.dispatchLocked(q.clock.Now())
	if zeroTTL {
		for _, e := range es {
			if e.zeroTTL && q.backlog.Remove(e) {
				q.dieLocked(e, Expired)
			}
		}
	}
	q.scheduleLocked()
}

// Withdraw takes held entries out of the queue for good: a write of their publishes failed
// and the publishers are told so. Their records, if written, are removed; they are never
// delivered nor dead-lettered.
func (q *Queue) Withdraw(es ...*Entry) {
	q.mu.Lock()
	defer q.unlock()
	for _, e := range es {
		e.held = false
		if e.heldDeath != "" {
			e.heldDeath = "" // already forgotten when it died
			continue
		}
		if q.deleted || !q.backlog.Remove(e) {
			continue // purged meanwhile: nothing left of it
		}
		q.forgetLocked(e)
	}
	// A held head may have stopped delivery behind it.
	q.dispatchLocked(q.clock.Now())
}

// Remove implements Backlog. Held entries are the newest, so the ring is searched from its
// newest end.
func (b *MemBacklog) Remove(e *Entry) bool {
	if e.gone {
		return false
	}
	for i := b.n - 1; i >= 0; i-- {
		if b.ring[(b.head+i)%len(b.ring)] == e {
			b.taken(e)
			e.gone = true
			return true
		}
	}
	for i, r := range b.requeued {
		if r == e {
			heap.Remove(&b.requeued, i)
			b.taken(e)
			return true
		}
	}
	for _, returned := range [...][]*Entry{b.front, b.back} {
		for _, r := range returned {
			if r == e {
				b.taken(e)
				e.gone = true
				return true
			}
		}
	}
	return false
}

// Remove implements Backlog. A held entry never enters the disk regions (settlePending and
// Trim stop at it), so it is in the head, the pending entries or the tail.
func (b *PagedBacklog) Remove(e *Entry) bool {
	if b.mem.Remove(e) || b.tail.Remove(e) {
		return true
	}
	for i, p := range b.pending {
		if p == e {
			copy(b.pending[i:], b.pending[i+1:])
			b.pending[len(b.pending)-1] = nil
			b.pending = b.pending[:len(b.pending)-1]
			b.pendingBytes -= e.Msg.Size()
			// The entries around it may reach the disk regions before the removal of its
			// record commits: a read-back must pass over it.
			if b.skip == nil {
				b.skip = make(map[uint64]struct{})
			}
			b.skip[e.Seq] = struct{}{}
			return true
		}
	}
	return false
}

// forgetSkipped drops the withdrawn Seqs a read-back has passed: behind the cursor, or all of
// them once nothing is left on disk.
func (b *PagedBacklog) forgetSkipped() {
	for seq := range b.skip {
		if seq <= b.cursor || (b.diskCount == 0 && len(b.pending) == 0) {
			delete(b.skip, seq)
		}
	}
	if len(b.skip) == 0 {
		b.skip = nil
	}
}

// Remove implements Backlog.
func (b *PriorityBacklog) Remove(e *Entry) bool { return b.of(e).Remove(e) }
