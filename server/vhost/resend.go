package vhost

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/server/queue"
)

// Resending a confirmed publish to a quorum queue whose leadership moves. In a cluster, such
// a publish can fail for a reason that lasts only while the queue's Raft group changes
// leader: the leader this node knew died (its stream broke, it cannot be dialled), it lost
// the leadership before the message was committed, this node has just been elected and has
// not installed its core yet, or no leader is known. Rather than nack it, the node that took
// the message from its publisher keeps it and sends it again, in order, to wherever the queue
// is led next, for up to ResendFor after the publish; only then is the publisher nacked. This
// is what RabbitMQ's quorum queue client does (it resends its pending commands to the new
// leader). A message whose first send was replicated before its leader was lost may then be
// stored twice: at least once, never lost, never confirmed unless a majority has it.
//
// Order. Each queue's resender numbers the publishes to it and keeps those waiting to be
// resent in that order. A publish waits behind them while any wait, and also while earlier
// sends to another holder are still unanswered (the holder changed under them: they may yet
// fail and be resent), so that the queue takes each publisher's messages in the order it
// published them. Once the leader is known again the first waiting message is sent alone (a
// probe); when it is stored the others follow. Only the node a publisher is connected to
// resends: a node that was forwarded a message and cannot take it answers that the queue
// moved (Scratch.NoResend), and the sender resends it.

// ResendFor bounds how long a publish to a quorum queue is resent while the queue has no
// reachable leader; then its publisher is nacked.
const ResendFor = 10 * time.Second

// resendFirst and resendMax are the wait before the first probe after a failure and the
// longest wait between probes.
const (
	resendFirst = 50 * time.Millisecond
	resendMax   = 500 * time.Millisecond
)

// errMoved and errElecting are the failures of a try that the queue reports itself: its core
// closed under the publish (the leadership moved away from this node), or no leader is known.
var (
	errMoved    = errors.New("quorum queue: the leadership moved away from this node")
	errElecting = errors.New("quorum queue: no leader known now")
	errNoLeader = errors.New("quorum queue: no leader took the message in time")
)

// resend is one publish to one quorum queue, sent until it is stored or its time is up. It is
// the vhost.Confirm of each try: the try's writes (a forward, the leader's journal) count on
// it, and when the last is done it settles the publish (c), or waits to be tried again.
type resend struct {
	v        *Vhost
	q        *Queue
	msg      *queue.Message
	c        Confirm // the publish's own: Done once, with the outcome
	deadline time.Time
	seq      uint64 // its place among the queue's publishes (resender.seq)
	// first: the try made while the publisher's goroutine waits (Hold goes to c). Written
	// before each try, read by the try and its settle.
	first bool

	remaining atomic.Int32
	err       atomic.Pointer[error] // the try's first failure
	core      *queue.Queue          // the entry the try left in the leader's core, if held
	entry     *queue.Entry
}

var _ Confirm = (*resend)(nil)

// publishResending publishes msg to q, a quorum queue of a cluster, resending it while its
// leadership moves. c is the publish's Confirm. It reports the first try's result: Enqueued
// when the message was taken (stored, or to be resent), Refused or Gone as a plain publish.
func (v *Vhost) publishResending(q *Queue, msg *queue.Message, c Confirm) queue.Result {
	c.Add() // Done once, when the publish is settled
	p := &resend{v: v, q: q, msg: msg, c: c, deadline: time.Now().Add(ResendFor)}
	rs := q.resender()
	rs.mu.Lock()
	rs.seq++
	p.seq = rs.seq
	dest := q.Remote()
	if len(rs.waiting) > 0 || rs.probe != nil || rs.draining || (rs.inflight > 0 && dest != rs.dest) {
		rs.waiting = append(rs.waiting, p) // the newest: last in order
		batch := rs.kickLocked()
		rs.mu.Unlock()
		rs.sendAll(batch)
		return queue.Enqueued
	}
	rs.inflight++
	rs.dest = dest
	rs.mu.Unlock()
	p.first = true
	return p.try(dest)
}

// try sends the message to dest, the queue's holder when the try was counted: this node's
// core ("") or the node that leads the queue. Its outcome comes to settle.
func (p *resend) try(dest string) queue.Result {
	v, q := p.v, p.q
	p.remaining.Store(1)
	p.err.Store(nil)
	p.core, p.entry = nil, nil
	res := queue.Enqueued
	switch {
	case !p.first && !v.holds(q):
		// Deleted meanwhile: dropped, as a message routed to a queue deleted under its publish
		// is, and confirmed (RabbitMQ confirms what it routed nowhere). A resend never runs on
		// a goroutine that could hold the vhost's lock.
		res = queue.Gone
	case dest == PendingHolder:
		p.fail(errElecting)
	case dest != "":
		if f := v.fwd.get(); f != nil {
			f.Forward(v, q, dest, p.msg, p)
		} else {
			p.fail(errElecting)
		}
	default:
		core := q.Core()
		p.Add()
		var written bool
		if p.c.Nackable() && p.msg.Persistent && q.stored && v.st != nil {
			var e *queue.Entry
			if res, e, written = core.PublishHeld(p.msg, p.Done); e != nil {
				p.core, p.entry = core, e
				if p.first {
					p.c.Hold(core, e) // released with the publish's other entries
				}
			}
		} else {
			res, written = core.Publish(p.msg, p.Done)
		}
		if !written {
			p.Done(nil)
		}
		switch {
		case res == queue.Enqueued:
			core.Counters().Publish.Add(1)
		case res == queue.Gone && q.Replicated():
			p.fail(errMoved)
			res = queue.Enqueued // taken: it is resent
		}
	}
	p.Done(nil) // the try's own count
	return res
}

// fail records a failure of the try without a write to count.
func (p *resend) fail(err error) { p.err.CompareAndSwap(nil, &err) }

// Add implements Confirm: one more write of the try.
func (p *resend) Add() { p.remaining.Add(1) }

// Done implements Confirm: one write of the try ended.
func (p *resend) Done(err error) {
	if err != nil {
		p.fail(err)
	}
	if p.remaining.Add(-1) == 0 {
		p.settle()
	}
}

// Hold implements Confirm. Only the try's own core publish holds an entry, and try records it
// itself; a forwarded try holds nothing here.
func (p *resend) Hold(*queue.Queue, *queue.Entry) {}

// Nackable implements Confirm.
func (p *resend) Nackable() bool { return p.c.Nackable() }

// settle ends a try: the publish is settled, or waits to be resent while the failure is one
// that lasts only while the leadership moves.
func (p *resend) settle() {
	var err error
	if ep := p.err.Load(); ep != nil {
		err = *ep
	}
	switch {
	case err == nil && p.entry != nil && !p.first:
		p.core.Release(p.entry)
	case err != nil && p.entry != nil:
		p.core.Withdraw(p.entry) // never delivered from a failed try (c's Release is then a no-op)
	}
	retry := err != nil && p.moving(err) && time.Now().Before(p.deadline)
	rs := p.q.resender()
	rs.mu.Lock()
	rs.inflight--
	if rs.probe == p {
		rs.probe = nil
		if retry {
			rs.delay = min(2*rs.delay, resendMax)
		}
	}
	switch {
	case retry:
		p.first = false
		rs.insertLocked(p)
		rs.failing = true
	case err == nil:
		rs.failing = false
		rs.delay = resendFirst
	}
	batch := rs.kickLocked()
	rs.mu.Unlock()
	if !retry {
		if err != nil {
			p.gaveUp(err)
		}
		p.c.Done(err)
	}
	// Not on this goroutine: it may be a forwarding stream's reader or the journal's pump,
	// which a send must not wait on.
	if batch != nil {
		go rs.sendAll(batch)
	}
}

// gaveUp ends a publish that is nacked: its deduplication id is forgotten (a retry is not a
// duplicate) and the failure logged.
func (p *resend) gaveUp(err error) {
	forgetQueueID(p.q, p.msg)
	if f := p.v.fwd.get(); f != nil {
		f.GaveUp(p.v, p.q, err)
	}
}

// moving says err lasts only while the queue's leadership moves.
func (p *resend) moving(err error) bool {
	if errors.Is(err, errMoved) || errors.Is(err, errElecting) {
		return true
	}
	f := p.v.fwd.get()
	return f != nil && f.LeaderMoving(err)
}

// resender orders a quorum queue's publishes while its leadership moves.
type resender struct {
	mu       sync.Mutex
	seq      uint64    // publishes numbered so far
	waiting  []*resend // to send, by seq
	inflight int       // tries sent and not settled
	dest     string    // the holder the last try went to ("" this node)
	probe    *resend   // the one try in flight while the others wait
	draining bool      // sendAll is sending waiting ones: new publishes wait behind them
	failing  bool      // the last try settled failed: the next goes alone, after delay
	timer    *time.Timer
	delay    time.Duration
}

// resender returns the queue's resender, made on first use.
func (q *Queue) resender() *resender {
	if rs := q.resend.Load(); rs != nil {
		return rs
	}
	q.resend.CompareAndSwap(nil, &resender{delay: resendFirst})
	return q.resend.Load()
}

// insertLocked puts p back among the waiting, in publish order.
func (rs *resender) insertLocked(p *resend) {
	i, _ := slices.BinarySearchFunc(rs.waiting, p.seq, func(w *resend, seq uint64) int {
		switch {
		case w.seq < seq:
			return -1
		case w.seq > seq:
			return 1
		}
		return 0
	})
	rs.waiting = slices.Insert(rs.waiting, i, p)
}

// kickLocked moves the waiting publishes on once nothing is in flight: all of them when the
// queue takes messages (the caller sends the batch returned, sendAll), else the first alone
// when the timer fires (fire).
func (rs *resender) kickLocked() []*resend {
	if len(rs.waiting) == 0 || rs.probe != nil || rs.inflight > 0 || rs.draining {
		return nil
	}
	if rs.failing {
		if rs.timer == nil {
			rs.timer = time.AfterFunc(rs.delay, rs.fire)
		}
		return nil
	}
	batch := rs.waiting
	rs.waiting = nil
	rs.draining = true
	return batch
}

// sendAll sends batch, in order, then whatever joined the waiting meanwhile, until none
// waits or a try failed (then the timer takes over).
func (rs *resender) sendAll(batch []*resend) {
	for len(batch) > 0 {
		for i, p := range batch {
			rs.mu.Lock()
			if rs.failing {
				// A try of this batch failed: the rest wait for the next probe, in order.
				for _, rest := range batch[i:] {
					rs.insertLocked(rest)
				}
				rs.mu.Unlock()
				break
			}
			dest := p.q.Remote()
			rs.inflight++
			rs.dest = dest
			rs.mu.Unlock()
			p.try(dest)
		}
		rs.mu.Lock()
		batch = nil
		if !rs.failing && len(rs.waiting) > 0 {
			batch = rs.waiting
			rs.waiting = nil
		} else {
			rs.draining = false
			if more := rs.kickLocked(); more != nil {
				batch = more
			}
		}
		rs.mu.Unlock()
	}
}

// fire sends the first waiting publish alone (the probe) once nothing else is in flight;
// those whose time is up are nacked.
func (rs *resender) fire() {
	rs.mu.Lock()
	rs.timer = nil
	now := time.Now()
	var expired []*resend
	for len(rs.waiting) > 0 && !now.Before(rs.waiting[0].deadline) {
		expired = append(expired, rs.waiting[0])
		rs.waiting = rs.waiting[1:]
	}
	var p *resend
	var dest string
	if len(rs.waiting) > 0 && rs.probe == nil && rs.inflight == 0 && !rs.draining {
		p = rs.waiting[0]
		rs.waiting = rs.waiting[1:]
		rs.probe = p
		dest = p.q.Remote()
		rs.inflight++
		rs.dest = dest
	}
	rs.mu.Unlock()
	for _, e := range expired {
		e.gaveUp(errNoLeader)
		e.c.Done(errNoLeader)
	}
	if p != nil {
		p.try(dest)
	}
}

// holds says q is still the vhost's queue of its name.
func (v *Vhost) holds(q *Queue) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.queues[q.name] == q
}
