package queue

import (
	"errors"
	"sync"
)

// Sentinel errors of the queue core.
var (
	// ErrExclusiveUse is returned by AddConsumer when the queue has an exclusive consumer, or
	// when an exclusive consumer asks for a queue that already has consumers.
	ErrExclusiveUse = errors.New("queue: in exclusive use")
	// ErrDeleted is returned by operations on a queue that was deleted.
	ErrDeleted = errors.New("queue: deleted")
)

// Consumer receives the messages a queue pushes to it.
type Consumer interface {
	// Deliver offers e to the consumer. The queue calls it with its lock held, so Deliver must
	// not call the queue back. It returns false, without taking e, when the consumer has no
	// credit left (prefetch reached, or its connection is backlogged); the queue then offers the
	// entry to its next consumer and calls Deliver again only after Kick.
	Deliver(q *Queue, e *Entry) bool
}

// ConsumerOptions are the basic.consume flags that matter to a queue.
type ConsumerOptions struct {
	// Exclusive asks to be the queue's only consumer.
	Exclusive bool
	// NoAck consumers settle entries on delivery: the queue forgets them at once.
	NoAck bool
}

type slot struct {
	c    Consumer
	opts ConsumerOptions
}

// Options configure a queue.
type Options struct {
	// Durable queues write persistent messages to the journal before they are confirmed.
	Durable bool
	// Journal, when set, persists entries and holds what does not fit the window.
	Journal Journal
	// Window bounds the ready entries kept in memory when there is a journal.
	Window Window
}

// Queue is one queue's messages and consumers. All methods are safe for concurrent use.
type Queue struct {
	name    string
	durable bool
	j       Journal

	mu        sync.Mutex
	backlog   Backlog
	nextSeq   uint64
	consumers []slot
	rr        int // index of the consumer to offer the next entry to first
	unacked   int
	deleted   bool
}

// New returns an empty queue. Without a journal its ready entries all stay in memory.
func New(name string, opts Options) *Queue {
	q := &Queue{name: name, durable: opts.Durable, j: opts.Journal, nextSeq: 1}
	if opts.Journal != nil {
		q.backlog = NewPagedBacklog(opts.Journal, opts.Window)
	} else {
		q.backlog = NewMemBacklog()
	}
	return q
}

// Recover returns a queue whose ready entries are the journal's count records (bytes of
// bodies) numbered first through last: a durable queue at start.
func Recover(name string, opts Options, count, bytes int, first, last uint64) *Queue {
	q := New(name, opts)
	if pb, ok := q.backlog.(*PagedBacklog); ok && count > 0 {
		pb.Restore(count, bytes, first-1, last)
		q.nextSeq = last + 1
	}
	return q
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Publish enqueues m and delivers it at once when a consumer has credit. A persistent message
// in a durable queue with a journal is written first: then done (if not nil) runs once the
// record is durable, and written is true. ok is false when the queue was deleted.
func (q *Queue) Publish(m *Message, done func(error)) (ok, written bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return false, false
	}
	e := &Entry{Msg: m, Seq: q.nextSeq}
	q.nextSeq++
	if q.j != nil && q.durable && m.Persistent {
		// Submitted under the lock, before anyone can see the entry, so an ack's Remove is
		// always submitted after this Append.
		e.Stored = true
		written = true
		q.j.Append(e, true, func(err error) {
			if err == nil {
				e.committed.Store(true)
			}
			if done != nil {
				done(err)
			}
		})
	}
	if q.backlog.Len() == 0 && len(q.consumers) > 0 && q.offerLocked(e) {
		return true, written
	}
	q.backlog.Push(e)
	q.dispatchLocked()
	return true, written
}

// offerLocked offers e to the consumers in rotation, starting after the last one served, and
// reports whether one took it.
func (q *Queue) offerLocked(e *Entry) bool {
	n := len(q.consumers)
	for i := 0; i < n; i++ {
		idx := (q.rr + i) % n
		s := q.consumers[idx]
		e.Deliveries++
		if s.c.Deliver(q, e) {
			q.rr = (idx + 1) % n
			if s.opts.NoAck {
				q.forgetLocked(e)
			} else {
				q.unacked++
			}
			return true
		}
		e.Deliveries--
	}
	return false
}

// dispatchLocked delivers ready entries while some consumer has credit.
func (q *Queue) dispatchLocked() {
	for len(q.consumers) > 0 {
		e := q.backlog.Peek()
		if e == nil || !q.offerLocked(e) {
			return
		}
		q.backlog.Pop()
	}
}

// Kick delivers what it can after consumers regained credit.
func (q *Queue) Kick() {
	q.mu.Lock()
	q.dispatchLocked()
	q.mu.Unlock()
}

// Get takes the next ready entry for basic.get, counting it as unacked unless noAck. It returns
// nil when the queue is empty, and the number of entries still ready.
func (q *Queue) Get(noAck bool) (*Entry, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.backlog.Pop()
	if e == nil {
		return nil, 0
	}
	e.Deliveries++
	if noAck {
		q.forgetLocked(e)
	} else {
		q.unacked++
	}
	return e, q.backlog.Len()
}

// forgetLocked removes a settled entry's record, if it has one.
func (q *Queue) forgetLocked(e *Entry) {
	if e.Stored && !q.deleted {
		q.j.Remove(e)
	}
}

// Settle forgets entries that were delivered and then acked, or rejected without requeue.
func (q *Queue) Settle(es []*Entry) {
	q.mu.Lock()
	q.unacked -= len(es)
	for _, e := range es {
		q.forgetLocked(e)
	}
	q.mu.Unlock()
}

// Requeue returns delivered entries to their original places, marked redelivered, and delivers
// them again. Entries of a deleted queue are dropped.
func (q *Queue) Requeue(es []*Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.unacked -= len(es)
	if q.deleted {
		return
	}
	for _, e := range es {
		e.Redelivered = true
		if e.Stored {
			q.j.SetDeliveries(e)
		}
		q.backlog.Requeue(e)
	}
	q.dispatchLocked()
}

// AddConsumer registers c. The queue starts delivering to it at once.
func (q *Queue) AddConsumer(c Consumer, opts ConsumerOptions) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return ErrDeleted
	}
	if len(q.consumers) > 0 && (opts.Exclusive || q.consumers[0].opts.Exclusive) {
		return ErrExclusiveUse
	}
	q.consumers = append(q.consumers, slot{c: c, opts: opts})
	q.dispatchLocked()
	return nil
}

// RemoveConsumer unregisters c and returns how many consumers remain; ok is false when c was not
// registered.
func (q *Queue) RemoveConsumer(c Consumer) (remaining int, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, s := range q.consumers {
		if s.c == c {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			if q.rr > i {
				q.rr--
			}
			if q.rr >= len(q.consumers) {
				q.rr = 0
			}
			return len(q.consumers), true
		}
	}
	return len(q.consumers), false
}

// Purge drops every ready entry and returns how many there were.
func (q *Queue) Purge() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.backlog.Purge(q.forgetLocked)
}

// Delete marks the queue deleted, drops its ready entries and returns its consumers (to be told
// with a server-sent basic.cancel) and how many entries were ready.
func (q *Queue) Delete() ([]Consumer, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, 0
	}
	// The journal's records go with the queue's own record, dropped by the caller in one step.
	q.deleted = true
	n := q.backlog.Purge(nil)
	cs := make([]Consumer, len(q.consumers))
	for i, s := range q.consumers {
		cs[i] = s.c
	}
	q.consumers = nil
	return cs, n
}

// Stats is a snapshot of a queue's counters.
type Stats struct {
	Ready, Unacked, Consumers int
	ReadyBytes                int
}

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Ready: q.backlog.Len(), Unacked: q.unacked, Consumers: len(q.consumers), ReadyBytes: q.backlog.Bytes()}
}
