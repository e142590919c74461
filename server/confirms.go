package server

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Publisher confirms and tx.commit-ok: the whole path from a publish to its answer.
//
//  1. The reader numbers a confirmed publish (channel.publishSeq) and gives it a writeWait,
//     which counts the store writes the publish made (queue records, a shared body).
//  2. The store's writer goroutine completes the writes; the last completion records the
//     outcome in the connection's settled list and wakes the connection's writer. It takes no
//     channel, queue or output lock.
//  3. The connection's writer goroutine (writeLoop) settles each publish's held queue entries
//     (released to consumers when the writes are durable, withdrawn when one failed, so a
//     nacked message is never delivered; queue/held.go) and then writes the answers, coalescing
//     consecutive tags of a channel into one basic.ack (or basic.nack) with multiple=true, as
//     RabbitMQ does when a batch completes.
//
// Once the connection's writer has stopped, completions settle their entries on the goroutine
// that completes them and no answer is sent: held entries never wait for a dead connection.
// They do wait while the publisher's writer is blocked on a socket the publisher does not
// read (at most write-timeout, after which the connection is dropped and they are settled):
// a cost borne by that publisher's own messages and those behind them in the same queues.

var _ vhost.Confirm = (*writeWait)(nil)

// writeWait collects the writes of one confirmed publish, or of one tx.commit. It starts
// holding one count, released by release, so it cannot complete while writes are still being
// added.
type writeWait struct {
	remaining atomic.Int32
	failed    atomic.Bool // a write failed
	refused   atomic.Bool // a queue refused the message (x-overflow reject-publish)
	ch        *channel
	tag       uint64 // the publish's sequence number; 0 for a tx.commit
	// nackable: the publisher can be told its message was refused (a confirm, not a
	// tx.commit-ok), so a message the store would refuse is not enqueued at all, and the
	// entries of a written message are held out of delivery until the writes are settled.
	nackable bool
	// held are the entries the publish left in its queues; held1 is their storage for the
	// common single-queue publish.
	held  []heldEntry
	held1 [1]heldEntry
}

// heldEntry is one queue's entry of a publish waiting for its writes.
type heldEntry struct {
	q *queue.Queue
	e *queue.Entry
}

// newConfirmWait returns the writeWait of a confirmed publish with sequence number tag.
func newConfirmWait(ch *channel, tag uint64) *writeWait {
	w := &writeWait{ch: ch, tag: tag, nackable: true}
	w.remaining.Store(1)
	return w
}

// newCommitWait returns the writeWait of a tx.commit: commit-ok once its writes are durable.
func newCommitWait(ch *channel) *writeWait {
	w := &writeWait{ch: ch}
	w.remaining.Store(1)
	return w
}

// Add implements vhost.Confirm: one more write to wait for.
func (w *writeWait) Add() { w.remaining.Add(1) }

// Nackable implements vhost.Confirm.
func (w *writeWait) Nackable() bool { return w.nackable }

// Hold implements vhost.Confirm: it records an entry to settle when the writes are done. It
// is called by the publishing goroutine before release, so before Done can complete the wait.
func (w *writeWait) Hold(q *queue.Queue, e *queue.Entry) {
	if w.held == nil {
		w.held = w.held1[:0]
	}
	w.held = append(w.held, heldEntry{q, e})
}

// Done implements vhost.Confirm: one write finished; the store's writer goroutine runs it.
func (w *writeWait) Done(err error) {
	if err != nil {
		w.failed.Store(true)
	}
	if w.remaining.Add(-1) == 0 {
		w.ch.conn.settled(w)
	}
}

// release drops the initial hold.
func (w *writeWait) release() { w.Done(nil) }

// ok is the answer: ack unless a write failed or a queue refused the message.
func (w *writeWait) ok() bool { return !w.failed.Load() && !w.refused.Load() }

// settleHeld releases the held entries, or withdraws them when a write failed.
func (w *writeWait) settleHeld() { settleHeld(w.held, w.failed.Load()) }

// settleHeld releases held, or withdraws them when failed.
func settleHeld(held []heldEntry, failed bool) {
	for _, h := range held {
		if failed {
			h.q.Withdraw(h.e)
		} else {
			h.q.Release(h.e)
		}
	}
}

// heldGroup is the held entries of one queue settled together.
type heldGroup struct {
	q        *queue.Queue
	release  []*queue.Entry
	withdraw []*queue.Entry
}

// settleAll settles the held entries of waits a queue at a time, so a queue's lock is taken
// once per drain, not once per message (16 publishers to one queue otherwise contend for it).
func settleAll(waits []*writeWait, sc *answerScratch) {
	groups := sc.groups[:0]
	for _, w := range waits {
		failed := w.failed.Load()
		for _, h := range w.held {
			i := 0
			for i < len(groups) && groups[i].q != h.q {
				i++
			}
			if i == len(groups) {
				if i < cap(groups) {
					groups = groups[:i+1]
					groups[i].q = h.q
				} else {
					groups = append(groups, heldGroup{q: h.q})
				}
			}
			if failed {
				groups[i].withdraw = append(groups[i].withdraw, h.e)
			} else {
				groups[i].release = append(groups[i].release, h.e)
			}
		}
	}
	for i := range groups {
		g := &groups[i]
		if len(g.withdraw) > 0 {
			g.q.Withdraw(g.withdraw...)
		}
		if len(g.release) > 0 {
			g.q.Release(g.release...)
		}
		clear(g.withdraw)
		clear(g.release)
		g.q, g.withdraw, g.release = nil, g.withdraw[:0], g.release[:0]
	}
	sc.groups = groups[:0]
}

// settledList is a connection's completed writeWaits, waiting for its writer.
type settledList struct {
	mu      sync.Mutex
	waits   []*writeWait
	stopped bool // the writer has stopped: settle on the completing goroutine
}

// settled hands a completed writeWait to the connection's writer.
func (c *conn) settled(w *writeWait) {
	c.confirms.mu.Lock()
	if c.confirms.stopped {
		c.confirms.mu.Unlock()
		w.settleHeld()
		return
	}
	c.confirms.waits = append(c.confirms.waits, w)
	first := len(c.confirms.waits) == 1
	c.confirms.mu.Unlock()
	if first {
		c.kickWriter()
	}
}

// stopConfirms runs once the writer has stopped: what it left is settled here, and later
// completions settle themselves.
func (c *conn) stopConfirms() {
	c.confirms.mu.Lock()
	c.confirms.stopped = true
	waits := c.confirms.waits
	c.confirms.waits = nil
	c.confirms.mu.Unlock()
	for _, w := range waits {
		w.settleHeld()
	}
}

// confirmState is what a channel has answered of its confirmed publishes; guarded by the
// channel's mu.
type confirmState struct {
	// next is the lowest tag not yet answered: every tag below it has been.
	next uint64
	// early are tags above next already answered on their own (they completed while an
	// earlier publish was still waiting for its writes).
	early map[uint64]struct{}
	// run is the answers being coalesced: tags runFrom..next-1, all ack or all nack.
	runFrom uint64
	runOK   bool
}

// answerScratch is the reusable memory of answerSettled.
type answerScratch struct {
	waits  []*writeWait
	groups []heldGroup
}

// writeConfirms settles the completed writeWaits and writes their answers; the writer
// goroutine runs it before each flush.
func (c *conn) writeConfirms() { c.answerSettled(&c.confirmScratch) }

// answerSettled settles the completed writeWaits and writes their answers, using sc. The
// writer runs it, and the reader (with a scratch of its own) before a channel closes, so
// answers that were ready go out before the close-ok.
func (c *conn) answerSettled(sc *answerScratch) {
	c.confirms.mu.Lock()
	waits := c.confirms.waits
	c.confirms.waits = sc.waits[:0]
	c.confirms.mu.Unlock()
	if len(waits) == 0 {
		sc.waits = waits
		return
	}
	settleAll(waits, sc)
	// By channel (a closed channel's id may be reused: keep its waits apart), then by tag.
	slices.SortStableFunc(waits, func(a, b *writeWait) int {
		if a.ch != b.ch {
			return cmp.Compare(a.ch.id, b.ch.id)
		}
		return cmp.Compare(a.tag, b.tag)
	})
	for start := 0; start < len(waits); {
		end := start + 1
		for end < len(waits) && waits[end].ch == waits[start].ch {
			end++
		}
		waits[start].ch.answer(waits[start:end])
		start = end
	}
	clear(waits)
	sc.waits = waits[:0]
}

// answer writes the answers to ws, this channel's completed waits in tag order, unless the
// channel was released meanwhile (its id may already name a new channel).
func (ch *channel) answer(ws []*writeWait) {
	c := ch.conn
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.released {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	cs := &ch.confirmed
	if cs.next == 0 {
		cs.next, cs.runFrom = 1, 1
	}
	var acked, answered uint64
	defer func() {
		c.srv.counters.confirmed.Add(acked)
		ch.stats.confirm.Add(acked)
		ch.stats.answered.Add(answered)
	}()
	for _, w := range ws {
		if w.tag == 0 {
			c.out.WriteMethod(ch.id, &amqpwire.TxCommitOk{})
			continue
		}
		ok := w.ok()
		answered++
		if ok {
			acked++
		}
		if !ok {
			ch.log.Debug().Uint64("delivery_tag", w.tag).Msg("nacking a publish: a write failed or a queue refused it")
		}
		if w.tag != cs.next {
			// A gap below: answer this one alone now rather than wait for the gap (after the
			// run so far, so answers go out in tag order where they can).
			ch.endRun()
			ch.writeAnswer(w.tag, false, ok)
			if cs.early == nil {
				cs.early = make(map[uint64]struct{})
			}
			cs.early[w.tag] = struct{}{}
			continue
		}
		if cs.runFrom < cs.next && cs.runOK != ok {
			ch.endRun()
		}
		if cs.runFrom == cs.next {
			cs.runOK = ok
		}
		cs.next++
		for {
			if _, answered := cs.early[cs.next]; !answered {
				break
			}
			// The run cannot cover a tag already answered: end it before, skip the tag.
			ch.endRun()
			delete(cs.early, cs.next)
			cs.next++
			cs.runFrom = cs.next
		}
	}
	ch.endRun()
}

// endRun writes the coalesced answer for tags runFrom..next-1, if any.
func (ch *channel) endRun() {
	cs := &ch.confirmed
	if cs.runFrom >= cs.next {
		return
	}
	ch.writeAnswer(cs.next-1, cs.next-1 > cs.runFrom, cs.runOK)
	cs.runFrom = cs.next
}

// writeAnswer writes one basic.ack or basic.nack (c.wmu held).
func (ch *channel) writeAnswer(tag uint64, multiple, ok bool) {
	if ok {
		ch.conn.out.WriteMethod(ch.id, &amqpwire.BasicAck{DeliveryTag: tag, Multiple: multiple})
		return
	}
	ch.conn.out.WriteMethod(ch.id, &amqpwire.BasicNack{DeliveryTag: tag, Multiple: multiple})
}
