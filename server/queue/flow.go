package queue

import (
	"sync/atomic"
	"time"
)

// Publisher flow control, the queue's half. A queue is congested from the moment its backlog
// spills past the in-memory window to disk while it has consumers, until the backlog is back
// under a quarter of the window (or the consumers are gone), as long as those consumers are
// taking messages (one was delivered within flowActive). Every second delivery from a
// congested queue grants one unit of credit (at most flowCreditMax banked); a publisher the
// server decides to pace takes a unit per message routed here, or waits for the next grant.
// Publishing then runs at half the rate the consumers drain the queue, so the backlog returns
// to memory, where a message costs no disk write and read, instead of running at the
// rate of the fastest client.
//
// The server paces only while the host's CPUs are saturated (see server/flow.go): a queue
// whose consumers are merely slower than its publishers, on a host with CPU to spare, keeps
// taking messages as fast as they come and pages them, as a buffer should.

const (
	// flowCreditMax bounds the credit a congested queue banks, so a publisher that paused
	// cannot come back with an unbounded burst.
	flowCreditMax = 256
	// flowActive: a congested queue that delivered nothing for this long has consumers that
	// are not taking messages (stalled, or at their prefetch limit and slow); pacing its
	// publishers to their rate would only stop them.
	flowActive = 100 // milliseconds
)

type flowState struct {
	spilled   atomic.Bool  // consumers attached, and the backlog spilled and not yet drained
	grants    uint8        // deliveries while spilled, modulo 2 (q.mu)
	lastGrant atomic.Int64 // unix millis of the last delivery while spilled
	credit    atomic.Int64
	waiters   atomic.Int32
	wake      chan struct{} // cap 1: a delivery granted credit, or the congestion ended
}

// updateFlowLocked recomputes whether the queue is spilled with consumers (q.mu held).
func (q *Queue) updateFlowLocked() {
	was := q.flow.spilled.Load()
	var s bool
	switch {
	case len(q.consumers) == 0 || q.deleted:
	case q.backlog.Spilled():
		s = true
	case was:
		s = q.backlog.Len() > q.win.Count/4 || q.backlog.Bytes() > q.win.Bytes/4
	}
	if was == s {
		return
	}
	q.flow.spilled.Store(s)
	if !s {
		q.flow.credit.Store(0)
		q.wakeFlow()
	}
}

// grantLocked is called for each delivery (q.mu held).
func (q *Queue) grantLocked(now int64) {
	if !q.flow.spilled.Load() {
		return
	}
	q.flow.lastGrant.Store(now)
	q.flow.grants = (q.flow.grants + 1) % 2
	if q.flow.grants != 0 && q.flow.credit.Load() < flowCreditMax {
		q.flow.credit.Add(1)
	}
	q.wakeFlow()
}

func (q *Queue) wakeFlow() {
	if q.flow.waiters.Load() > 0 {
		select {
		case q.flow.wake <- struct{}{}:
		default:
		}
	}
}

// Congested reports whether publishers to the queue should be paced by its deliveries: it has
// consumers that are taking messages while its backlog is spilled to disk.
func (q *Queue) Congested() bool {
	return q.flow.spilled.Load() && q.clock.Now()-q.flow.lastGrant.Load() < flowActive
}

func (q *Queue) takeCredit() bool {
	for {
		c := q.flow.credit.Load()
		if c <= 0 {
			return false
		}
		if q.flow.credit.CompareAndSwap(c, c-1) {
			return true
		}
	}
}

// AwaitCredit takes one unit of the queue's credit for a message just published to it,
// waiting up to limit for a delivery to grant one while the queue stays congested. t is the
// caller's timer, reused across calls. It reports whether the caller had to wait.
func (q *Queue) AwaitCredit(t *time.Timer, limit time.Duration) (waited bool) {
	if q.takeCredit() || !q.Congested() {
		return false
	}
	q.flow.waiters.Add(1)
	defer q.flow.waiters.Add(-1)
	t.Reset(limit)
	defer t.Stop()
	for {
		select {
		case <-q.flow.wake:
		case <-t.C:
			return true
		}
		if q.takeCredit() || !q.Congested() {
			return true
		}
	}
}
