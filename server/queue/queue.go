package queue

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
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
	// Priority is x-priority: higher-priority consumers get messages while they have credit;
	// lower ones only when all higher ones are full.
	Priority int32
}

type slot struct {
	c    Consumer
	opts ConsumerOptions
}

// Overflow is what a queue at its length limit does with a new message.
type Overflow uint8

// Overflow behaviours (x-overflow).
const (
	DropHead         Overflow = iota // drop (dead-letter) the oldest ready message
	RejectPublish                    // refuse the new one: the publisher gets basic.nack
	RejectPublishDLX                 // refuse it and dead-letter it
)

// Features are a queue's optional behaviours, from its x-arguments.
type Features struct {
	// HasTTL and MessageTTL are x-message-ttl.
	HasTTL     bool
	MessageTTL time.Duration
	// MaxLength and MaxBytes limit the ready messages (-1: no limit); Overflow says how.
	MaxLength int
	MaxBytes  int
	Overflow  Overflow
	// DeliveryLimit dead-letters an entry returned more than this many times (-1: no limit).
	DeliveryLimit int
	// MaxPriority (x-max-priority) makes a priority queue with levels 0..MaxPriority.
	MaxPriority uint8
	// SingleActiveConsumer delivers to the earliest registered consumer only; the next takes
	// over when it goes.
	SingleActiveConsumer bool
	// Quorum gives a quorum queue's delivery semantics (RabbitMQ 3.10.8's): returned entries
	// are delivered, in the order they came back, before every other with a delivery limit and
	// behind every other without one, rather than at their original places; redeliveries
	// carry x-delivery-count with or without a limit.
	Quorum bool
}

// NoFeatures is a plain queue.
var NoFeatures = Features{MaxLength: -1, MaxBytes: -1, DeliveryLimit: -1}

// Reason is why an entry was dead-lettered, as it appears in x-death.
type Reason string

// Dead-letter reasons, RabbitMQ's names.
const (
	Rejected      Reason = "rejected"
	Expired       Reason = "expired"
	MaxLen        Reason = "maxlen"
	DeliveryLimit Reason = "delivery_limit"
	// DeliveryTimeout is Warren's: a delivery left unacknowledged past the queue's
	// x-delivery-timeout, with x-delivery-timeout-action dead-letter.
	DeliveryTimeout Reason = "delivery_timeout"
)

// Dead is an entry that left its queue without being acked, and why.
type Dead struct {
	Entry  *Entry
	Reason Reason
}

// Options configure a queue.
type Options struct {
	// Durable queues write persistent messages to the journal before they are confirmed.
	Durable bool
	// Journal, when set, persists entries and holds what does not fit the window.
	Journal Journal
	// LevelJournal gives a priority queue's levels above 0 their own journals (each level
	// pages on its own); level 0 uses Journal.
	LevelJournal func(level uint8) Journal
	// Window bounds the ready entries kept in memory when there is a journal.
	Window Window
	// Features are the x-argument behaviours; the zero value is not "none": use NoFeatures.
	Features Features
	// DeadLetter receives entries that die (rejected, expired, dropped by a limit), in order,
	// without the queue's lock held. Nil drops them.
	DeadLetter func(q *Queue, dead []Dead)
	// Clock is the queue's time: deadlines, timers and flow control. Nil is RealClock.
	Clock Clock
}

// Result is what Publish did with a message.
type Result uint8

// Publish results.
const (
	Enqueued Result = iota // accepted (delivered, queued, or dropped as expired on arrival)
	Refused                // refused by x-overflow reject-publish(-dlx): nack the publisher
	Gone                   // the queue was deleted
)

// Queue is one queue's messages and consumers. All methods are safe for concurrent use.
type Queue struct {
	name       string
	durable    bool
	j          Journal
	f          Features                 // guarded by mu
	fview      atomic.Pointer[Features] // a copy of f for Features()
	deadLetter func(*Queue, []Dead)
	clock      Clock

	journals []Journal // per priority level; nil entries without a journal

	mu        sync.Mutex
	backlog   Backlog
	nextSeq   uint64
	consumers []slot        // by priority, highest first; registration order within one
	rr        map[int32]int // per consumer priority: where the rotation continues
	unacked   int
	deleted   bool
	timer     Timer
	timerAt   int64
	dead      []Dead // collected under mu, handed to deadLetter after it is released
	// readWait, when not nil, is closed when a read-back from the journal finishes: Get waits
	// on it for an entry that is on its way back from disk.
	readWait chan struct{}

	win  Window    // the in-memory window (of each priority level)
	flow flowState // publisher flow control, see flow.go

	counters Counters // message counters for listings (counters.go)
}

// New returns an empty queue. Without a journal its ready entries all stay in memory.
func New(name string, opts Options) *Queue {
	q := &Queue{name: name, durable: opts.Durable, j: opts.Journal, f: opts.Features,
		deadLetter: opts.DeadLetter, clock: opts.Clock, nextSeq: 1, rr: map[int32]int{}}
	if q.clock == nil {
		q.clock = RealClock{}
	}
	q.flow.wake = make(chan struct{}, 1)
	q.win = opts.Window
	if opts.Features == (Features{}) {
		q.f = NoFeatures
	}
	f := q.f
	q.fview.Store(&f)
	q.journals = make([]Journal, int(q.f.MaxPriority)+1)
	q.journals[0] = opts.Journal
	for l := 1; l < len(q.journals) && opts.Journal != nil; l++ {
		q.journals[l] = opts.Journal
		if opts.LevelJournal != nil {
			q.journals[l] = opts.LevelJournal(uint8(l))
		}
	}
	mk := func(level uint8) Backlog {
		if j := q.journals[level]; j != nil {
			b := NewPagedBacklog(j, opts.Window)
			b.readDone = q.readBack
			return b
		}
		return NewMemBacklog()
	}
	if q.f.MaxPriority > 0 {
		q.backlog = NewPriorityBacklog(q.f.MaxPriority, mk)
	} else {
		q.backlog = mk(0)
	}
	return q
}

// Restored is what the journal holds for one level of a recovered queue: count records (bytes
// of bodies) numbered first through last.
type Restored struct {
	Count, Bytes int
	First, Last  uint64
}

// Recover returns a queue over the records its journals hold: a durable queue at start.
// levels[i] is level i of a priority queue; a plain queue has one.
func Recover(name string, opts Options, levels []Restored) *Queue {
	q := New(name, opts)
	for i, r := range levels {
		if r.Count == 0 || i >= len(q.journals) {
			continue
		}
		b := q.backlog
		if pb, ok := b.(*PriorityBacklog); ok {
			b = pb.levels[i]
		}
		if pb, ok := b.(*PagedBacklog); ok {
			pb.Restore(r.Count, r.Bytes, r.First-1, r.Last)
			q.nextSeq = max(q.nextSeq, r.Last+1)
		}
	}
	if q.f.HasTTL {
		q.mu.Lock()
		q.backlog.Peek() // read the head so its deadlines are tracked
		q.scheduleLocked()
		q.unlock()
	}
	return q
}

// journalFor is the journal that keeps e's record: its priority level's.
func (q *Queue) journalFor(e *Entry) Journal {
	if len(q.journals) == 1 {
		return q.j
	}
	return q.journals[Level(e.Msg, q.f.MaxPriority)]
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Features returns the queue's x-argument behaviours. It takes no lock: consumers call it
// while the queue delivers to them.
func (q *Queue) Features() Features { return *q.fview.Load() }

// unlock releases the lock and then hands the entries that died meanwhile to the dead-letter
// hook: dead-lettering publishes to other queues, which must not happen under this lock.
func (q *Queue) unlock() {
	dead := q.dead
	q.dead = nil
	q.updateFlowLocked()
	q.mu.Unlock()
	if len(dead) > 0 && q.deadLetter != nil {
		q.deadLetter(q, dead)
	}
}

// dieLocked forgets an entry that left the queue without an ack and queues it for the
// dead-letter hook.
func (q *Queue) dieLocked(e *Entry, why Reason) {
	q.forgetLocked(e)
	if e.held {
		// Its publish is not settled yet: dead-letter it once it is released, never if it is
		// withdrawn (see held.go).
		e.heldDeath = why
		return
	}
	q.dead = append(q.dead, Dead{Entry: e, Reason: why})
}

// Publish enqueues m and delivers it at once when a consumer has credit. A persistent message
// in a durable queue with a journal is written first: then done (if not nil) runs once the
// record is durable, and written is true.
func (q *Queue) Publish(m *Message, done func(error)) (res Result, written bool) {
	res, _, written = q.publish(m, done, false)
	return res, written
}

func (q *Queue) publish(m *Message, done func(error), hold bool) (res Result, held *Entry, written bool) {
	q.mu.Lock()
	defer q.unlock()
	if q.deleted {
		return Gone, nil, false
	}
	e := &Entry{Msg: m, held: hold}
	now := q.clock.Now()
	// A deadline is passed once the clock reads past it (see expired), so a message never
	// expires before its full TTL although the clock counts whole milliseconds. A TTL of 0
	// is marked instead of left to the clock: it must not live even that millisecond.
	e.Expires = q.deadline(m, now)
	e.zeroTTL = q.zeroTTL(m)
	if q.f.Overflow != DropHead && q.overLimitWith(m.Size()) {
		if q.f.Overflow == RejectPublishDLX {
			e.Seq = q.nextSeq
			q.nextSeq++
			e.held = false // refused here whatever happens elsewhere: dead-lettered now
			q.dead = append(q.dead, Dead{Entry: e, Reason: MaxLen})
		}
		return Refused, nil, false
	}
	e.Seq = q.nextSeq
	q.nextSeq++
	if hold {
		held = e
	}
	if q.j != nil && q.durable && (m.Persistent || q.f.Quorum) {
		// A quorum queue keeps every message it takes, persistent or not, as RabbitMQ's
		// do. Submitted under the lock, before anyone can see the entry, so an ack's Remove is
		// always submitted after this Append.
		e.Stored = true
		written = true
		q.journalFor(e).Append(e, true, func(err error) {
			if err == nil {
				e.committed.Store(true)
			}
			if done != nil {
				done(err)
			}
		})
	}
	if !hold && q.backlog.Len() == 0 && len(q.consumers) > 0 && q.offerLocked(e, now) {
		return Enqueued, nil, written
	}
	if !hold && (e.zeroTTL || expired(e, now)) {
		// A TTL of 0: deliverable only to a consumer waiting right now, never to a later
		// consumer or basic.get (RabbitMQ drops or dead-letters it at once). A held entry
		// gets that chance when it is released.
		q.dieLocked(e, Expired)
		return Enqueued, nil, written
	}
	q.backlog.Push(e)
	q.enforceLimitLocked()
	q.dispatchLocked(now)
	q.scheduleLocked()
	return Enqueued, held, written
}

// deadline is the lower of the message's own TTL and the queue's, from now; 0 for none.
func (q *Queue) deadline(m *Message, now int64) int64 {
	var d int64
	if q.f.HasTTL {
		d = now + q.f.MessageTTL.Milliseconds()
	}
	if m.HasTTL {
		if t := now + m.TTL; d == 0 || t < d {
			d = t
		}
	}
	return d
}

// zeroTTL reports whether the TTL that applies to m, the lower of its own and the queue's, is 0.
func (q *Queue) zeroTTL(m *Message) bool {
	return (q.f.HasTTL && q.f.MessageTTL <= 0) || (m.HasTTL && m.TTL <= 0)
}

// expired reports whether e is past its deadline at now. An entry whose deadline is now may
// still go to a consumer waiting now; it expires when the clock reads a millisecond more, so
// the whole TTL has passed whatever the fraction of a millisecond it was published at.
func expired(e *Entry, now int64) bool { return e.Expires != 0 && e.Expires < now }

// overLimitWith reports whether one more message of size would pass a length limit.
func (q *Queue) overLimitWith(size int) bool {
	return (q.f.MaxLength >= 0 && q.backlog.Len()+1 > q.f.MaxLength) ||
		(q.f.MaxBytes >= 0 && q.backlog.Bytes()+size > q.f.MaxBytes)
}

// enforceLimitLocked drops (dead-letters) the oldest ready entries while a limit is exceeded.
func (q *Queue) enforceLimitLocked() {
	for (q.f.MaxLength >= 0 && q.backlog.Len() > q.f.MaxLength) ||
		(q.f.MaxBytes >= 0 && q.backlog.Bytes() > q.f.MaxBytes) {
		e := q.backlog.Pop()
		if e == nil {
			return
		}
		q.dieLocked(e, MaxLen)
	}
}

// offerLocked offers e to the consumers in rotation, starting after the last one served, and
// reports whether one took it. An entry past its deadline is never offered.
func (q *Queue) offerLocked(e *Entry, now int64) bool {
	if expired(e, now) {
		return false
	}
	n := len(q.consumers)
	if q.f.SingleActiveConsumer {
		n = min(n, 1) // only the earliest registered consumer is active
	}
	// Consumers are grouped by priority, highest first; within a group, in rotation.
	for start := 0; start < n; {
		p := q.consumers[start].opts.Priority
		end := start + 1
		for end < n && q.consumers[end].opts.Priority == p {
			end++
		}
		size := end - start
		rr := q.rr[p] % size
		for i := 0; i < size; i++ {
			s := q.consumers[start+(rr+i)%size]
			e.Deliveries++
			if s.c.Deliver(q, e) {
				q.grantLocked(now)
				q.rr[p] = (rr + i + 1) % size
				if s.opts.NoAck {
					q.forgetLocked(e)
				} else {
					q.unacked++
				}
				return true
			}
			e.Deliveries--
		}
		start = end
	}
	return false
}

// dispatchLocked delivers ready entries while some consumer has credit, expiring any that are
// past their deadline on the way.
func (q *Queue) dispatchLocked(now int64) {
	for len(q.consumers) > 0 {
		e := q.backlog.Peek()
		if e == nil || e.held {
			return
		}
		if expired(e, now) {
			q.backlog.Pop()
			q.dieLocked(e, Expired)
			continue
		}
		if !q.offerLocked(e, now) {
			return
		}
		q.backlog.Pop()
	}
}

// scheduleLocked arms the expiry timer for the earliest deadline in the backlog: due the
// millisecond after it (see expired).
func (q *Queue) scheduleLocked() {
	if q.f.HasTTL && q.backlog.Len() > 0 {
		// Messages may wait on disk ahead of those in memory: read the head back, so that its
		// deadlines, the earliest under a queue-wide TTL, are tracked (the read-back schedules
		// again when it arrives).
		q.backlog.Peek()
	}
	next := q.backlog.NextExpiry()
	if next == 0 || q.deleted {
		return
	}
	due := next + 1
	if q.timer != nil && q.timerAt != 0 && q.timerAt <= due {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerAt = due
	q.timer = q.clock.At(due, q.expireDue)
}

// expireChunk bounds the entries expired under one hold of the lock, so a mass expiry does not
// stall the queue's publishers and consumers.
const expireChunk = 512

// expireDue runs on the timer: entries past their deadline leave, from wherever they are in the
// order, and are dead-lettered with reason expired, a chunk at a time.
func (q *Queue) expireDue() {
	for {
		q.mu.Lock()
		q.timerAt = 0
		if q.deleted {
			q.mu.Unlock()
			return
		}
		now := q.clock.Now()
		es := q.backlog.Expire(now, expireChunk, nil)
		for _, e := range es {
			q.dieLocked(e, Expired)
		}
		if len(es) < expireChunk {
			q.dispatchLocked(now)
			q.scheduleLocked()
			q.unlock()
			return
		}
		q.unlock()
	}
}

// Kick delivers what it can after consumers regained credit.
func (q *Queue) Kick() {
	q.mu.Lock()
	defer q.unlock()
	q.dispatchLocked(q.clock.Now())
}

// Get takes the next ready entry for basic.get, counting it as unacked unless noAck. It returns
// nil when the queue is empty, and the number of entries still ready. When the next entry is
// being read back from the journal, Get waits for it without holding the queue's lock.
func (q *Queue) Get(noAck bool) (*Entry, int) {
	for {
		e, n, wait := q.TryGet(noAck)
		if wait == nil {
			return e, n
		}
		<-wait
	}
}

// TryGet is Get without the wait: when the next entry is being read back from the journal it
// returns no entry and a channel that is closed once the read is back; call it again then.
func (q *Queue) TryGet(noAck bool) (*Entry, int, <-chan struct{}) {
	q.mu.Lock()
	defer q.unlock()
	now := q.clock.Now()
	for {
		h := q.backlog.Peek()
		if h != nil && h.held {
			return nil, 0, nil // its publish is not settled yet
		}
		if h == nil {
			if q.deleted || !q.backlog.Reading() {
				return nil, 0, nil
			}
			if q.readWait == nil {
				q.readWait = make(chan struct{})
			}
			return nil, 0, q.readWait
		}
		e := q.backlog.Pop()
		if expired(e, now) {
			q.dieLocked(e, Expired)
			continue
		}
		e.Deliveries++
		if noAck {
			q.forgetLocked(e)
		} else {
			q.unacked++
		}
		return e, q.backlog.Len(), nil
	}
}

// forgetLocked removes a settled entry's record, if it has one.
func (q *Queue) forgetLocked(e *Entry) {
	if e.Stored && !q.deleted {
		q.journalFor(e).Remove(e)
	}
}

// Settle forgets entries that were delivered and then acked.
func (q *Queue) Settle(es []*Entry) {
	q.mu.Lock()
	q.unacked -= len(es)
	for _, e := range es {
		q.forgetLocked(e)
	}
	q.mu.Unlock()
}

// Reject forgets delivered entries rejected without requeue and dead-letters them.
func (q *Queue) Reject(es []*Entry) { q.DeadLetter(es, Rejected) }

// DeadLetter forgets delivered entries that leave without an ack and dead-letters them with
// reason why.
func (q *Queue) DeadLetter(es []*Entry, why Reason) {
	q.mu.Lock()
	defer q.unlock()
	q.unacked -= len(es)
	for _, e := range es {
		if q.deleted {
			continue
		}
		q.dieLocked(e, why)
	}
}

// Requeue returns delivered entries to their original places (a quorum queue: to the front, in
// the order given, with a delivery limit, and to the back without one), marked redelivered, and
// delivers them again; an entry returned more often than the delivery limit is dead-lettered
// instead.
// Entries of a deleted queue are dropped.
func (q *Queue) Requeue(es []*Entry) {
	q.mu.Lock()
	defer q.unlock()
	q.unacked -= len(es)
	if q.deleted {
		return
	}
	for _, e := range es {
		if q.f.DeliveryLimit >= 0 && int(e.Deliveries) > q.f.DeliveryLimit {
			q.dieLocked(e, DeliveryLimit)
			continue
		}
		if e.zeroTTL {
			// Its TTL of 0 had passed by the time it came back: RabbitMQ keeps a requeued
			// message's deadline, finds it due and drops (dead-letters) it.
			q.dieLocked(e, Expired)
			continue
		}
		e.Redelivered = true
		if e.Stored {
			q.journalFor(e).SetDeliveries(e)
		}
		switch {
		case q.f.Quorum && q.f.DeliveryLimit >= 0:
			q.backlog.ReturnFront(e)
			continue
		case q.f.Quorum:
			q.backlog.ReturnBack(e, q.nextSeq-1)
			continue
		}
		q.backlog.Requeue(e)
	}
	q.enforceLimitLocked() // a requeue can overfill the queue: the head goes, as in RabbitMQ
	q.dispatchLocked(q.clock.Now())
	q.scheduleLocked()
}

// AddConsumer registers c. The queue starts delivering to it at once.
func (q *Queue) AddConsumer(c Consumer, opts ConsumerOptions) error {
	q.mu.Lock()
	defer q.unlock()
	if q.deleted {
		return ErrDeleted
	}
	if len(q.consumers) > 0 && (opts.Exclusive || q.consumers[0].opts.Exclusive) {
		return ErrExclusiveUse
	}
	// Keep the list by priority, highest first, registration order within a priority; a single
	// active consumer queue keeps plain registration order.
	i := len(q.consumers)
	if !q.f.SingleActiveConsumer {
		for i > 0 && q.consumers[i-1].opts.Priority < opts.Priority {
			i--
		}
	}
	q.consumers = append(q.consumers, slot{})
	copy(q.consumers[i+1:], q.consumers[i:])
	q.consumers[i] = slot{c: c, opts: opts}
	q.dispatchLocked(q.clock.Now())
	return nil
}

// RemoveConsumer unregisters c and returns how many consumers remain; ok is false when c was not
// registered.
func (q *Queue) RemoveConsumer(c Consumer) (remaining int, ok bool) {
	q.mu.Lock()
	defer q.unlock()
	for i, s := range q.consumers {
		if s.c == c {
			// Keep the rotation of c's priority group where it was.
			p, start := s.opts.Priority, i
			for start > 0 && q.consumers[start-1].opts.Priority == p {
				start--
			}
			if i-start < q.rr[p] {
				q.rr[p]--
			}
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			if i == 0 && q.f.SingleActiveConsumer {
				// The next consumer becomes active: give it what is waiting.
				q.dispatchLocked(q.clock.Now())
			}
			return len(q.consumers), true
		}
	}
	return len(q.consumers), false
}

// Purge drops every ready entry and returns how many there were. Purged messages are not
// dead-lettered (as in RabbitMQ).
func (q *Queue) Purge() int {
	q.mu.Lock()
	defer q.unlock()
	return q.backlog.Purge(q.forgetLocked)
}

// Delete marks the queue deleted, drops its ready entries and returns its consumers (to be told
// with a server-sent basic.cancel) and how many entries were ready.
func (q *Queue) Delete() ([]Consumer, int) {
	q.mu.Lock()
	defer q.unlock()
	if q.deleted {
		return nil, 0
	}
	// The journal's records go with the queue's own record, dropped by the caller in one step.
	q.deleted = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.wakeReaders()
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

// Reconfigure changes the queue's TTL, length limits, overflow and delivery limit (a policy
// changed). Priority levels and single active consumer stay as the queue was created. A lower
// limit drops (dead-letters) the oldest ready messages at once; a new TTL applies to messages
// published from now on, as in RabbitMQ.
func (q *Queue) Reconfigure(f Features) {
	q.mu.Lock()
	defer q.unlock()
	f.MaxPriority, f.SingleActiveConsumer = q.f.MaxPriority, q.f.SingleActiveConsumer
	q.f = f
	q.fview.Store(&f)
	if q.deleted {
		return
	}
	q.enforceLimitLocked()
	q.dispatchLocked(q.clock.Now())
	q.scheduleLocked()
}
