package vhost

import (
	"errors"
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
// The queue keeps the messages waiting to be resent in publish order (resender): while any
// wait, a new publish to the queue waits behind them, and once the leader is known again one
// of them is sent alone (a probe); when it is confirmed the rest follow. Only the node a
// publisher is connected to resends: a node that was forwarded a message and cannot take it
// answers that the queue moved (Scratch.NoResend), and the sender resends it.

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
	first    bool // the try made while the publisher's goroutine waits (Hold goes to c)
	drained  bool // sent by a drain: its end is counted (resender.drains); under resender.mu

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
	c.Add() // Done once, by settle
	p := &resend{v: v, q: q, msg: msg, c: c, deadline: time.Now().Add(ResendFor)}
	if rs := q.resend.Load(); rs != nil && rs.active.Load() && rs.wait(p) {
		return queue.Enqueued // behind the messages waiting to be resent, in order
	}
	p.first = true
	return p.try()
}

// try sends the message to q's holder: this node's core when it leads the queue, else the
// node that does. Its outcome comes to settle.
func (p *resend) try() queue.Result {
	v, q := p.v, p.q
	p.remaining.Store(1)
	p.err.Store(nil)
	p.core, p.entry = nil, nil
	res := queue.Enqueued
	if !p.first && !v.holds(q) {
		// Deleted meanwhile: dropped, as a message routed to a queue deleted under its publish
		// is, and confirmed (RabbitMQ confirms what it routed nowhere). A resend never runs on
		// a goroutine that could hold the vhost's lock.
		p.Done(nil)
		return queue.Gone
	}
	if node := q.remote.Load(); node != nil {
		if f := v.fwd.get(); f == nil || *node == PendingHolder {
			p.fail(errElecting)
		} else {
			f.Forward(v, q, *node, p.msg, p)
		}
	} else {
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
	ep := p.err.Load()
	if ep == nil {
		if p.entry != nil && !p.first {
			p.core.Release(p.entry)
		}
		p.untrack()
		p.c.Done(nil)
		return
	}
	err := *ep
	if p.entry != nil {
		p.core.Withdraw(p.entry) // never delivered from a failed try (c's Release is then a no-op)
	}
	p.first = false
	if p.moving(err) && time.Now().Before(p.deadline) {
		p.q.resender().tried(p, false)
		return
	}
	p.untrack()
	forgetQueueID(p.q, p.msg)
	p.c.Done(err)
}

// untrack tells the queue's resender, if it is at work, that p is settled.
func (p *resend) untrack() {
	if rs := p.q.resend.Load(); rs != nil && rs.active.Load() {
		rs.tried(p, true)
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

// resender is a quorum queue's publishes waiting to be resent, in publish order.
type resender struct {
	active  atomic.Bool // something waits or is being resent: new publishes wait behind it
	mu      sync.Mutex
	waiting []*resend
	probe   *resend // the one try in flight while the others wait
	timer   *time.Timer
	delay   time.Duration
	drains  int // resends a drain sent, not yet settled
}

// resender returns the queue's resender, made on first use.
func (q *Queue) resender() *resender {
	if rs := q.resend.Load(); rs != nil {
		return rs
	}
	q.resend.CompareAndSwap(nil, &resender{delay: resendFirst})
	return q.resend.Load()
}

// wait puts a new publish behind the ones waiting; false when nothing waits any more (the
// caller tries it at once).
func (rs *resender) wait(p *resend) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.active.Load() {
		return false
	}
	rs.waiting = append(rs.waiting, p)
	rs.kickLocked(false)
	return true
}

// tried takes the end of a try: done when the publish is settled, else it waits to be sent
// again.
func (rs *resender) tried(p *resend, done bool) {
	rs.mu.Lock()
	probe := rs.probe == p
	if probe {
		rs.probe = nil
	}
	if p.drained {
		p.drained = false
		rs.drains--
	}
	stored := done && p.err.Load() == nil
	switch {
	case stored:
		rs.delay = resendFirst
	case !done && probe:
		rs.waiting = append([]*resend{p}, rs.waiting...) // it stays first
		rs.delay = min(2*rs.delay, resendMax)
		rs.active.Store(true)
	case !done:
		rs.waiting = append(rs.waiting, p)
		rs.active.Store(true)
	}
	rs.kickLocked(stored)
	rs.mu.Unlock()
}

// kickLocked gets the waiting publishes going: all of them at once after a try was stored
// (the queue takes messages again), else a probe when the timer fires. With nothing left to
// do the resender goes idle.
func (rs *resender) kickLocked(stored bool) {
	switch {
	case len(rs.waiting) == 0:
		if rs.probe == nil && rs.timer == nil && rs.drains == 0 {
			rs.active.Store(false)
		}
	case rs.probe != nil || rs.timer != nil:
		// the probe's outcome, or the timer, moves them on
	case stored:
		batch := rs.waiting
		rs.waiting = nil
		rs.drains += len(batch)
		for _, p := range batch {
			p.drained = true
		}
		// Not on this goroutine: it may be a forwarding stream's reader or the journal's
		// pump, which a send must not wait on.
		go func() {
			for _, p := range batch {
				p.try()
			}
		}()
	case rs.drains == 0:
		rs.timer = time.AfterFunc(rs.delay, rs.fire)
	}
}

// fire sends the first waiting publish alone (the probe); those whose time is up are nacked.
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
	if len(rs.waiting) > 0 {
		p = rs.waiting[0]
		rs.waiting = rs.waiting[1:]
		rs.probe = p
	}
	rs.kickLocked(false)
	rs.mu.Unlock()
	for _, e := range expired {
		forgetQueueID(e.q, e.msg)
		e.c.Done(errors.New("quorum queue: no leader took the message in time"))
	}
	if p != nil {
		p.try()
	}
}

// holds says q is still the vhost's queue of its name.
func (v *Vhost) holds(q *Queue) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.queues[q.name] == q
}
