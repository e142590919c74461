package vhost

import (
	"time"

	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
)

// Confirm counts the store writes of one publish (a publisher confirm or a tx.commit) and
// holds its queue entries until the writes are durable. The protocol layer implements it
// (server's writeWait) and answers the publisher once every write is done.
type Confirm interface {
	// Add counts one more write; Done ends one, with its error, on the store's writer
	// goroutine.
	Add()
	Done(err error)
	// Hold records an entry that q keeps out of delivery until the writes settle; the
	// implementation releases or withdraws it (queue.Queue.Release, Withdraw).
	Hold(q *queue.Queue, e *queue.Entry)
	// Nackable says the publisher can be told its message was refused (a confirm, not a
	// tx.commit-ok): then a message the store would refuse is enqueued nowhere, and the
	// entries of a written message are held until its writes settle, so a message its
	// publisher was told was refused is never delivered.
	Nackable() bool
}

// Publish routes msg, published to x with the routing keys keys (the message's own, plus
// CC and BCC), and enqueues it on every queue it reaches, writing a persistent message's body
// once when several durable queues keep it. c, when not nil, counts the store writes. It
// reports whether any queue took the message and whether any refused it (x-overflow
// reject-publish, or a full disk for a confirmed persistent message). s is the caller's
// scratch memory; s.Congested looks at the queues of the last Publish.
//
// A delayed-message exchange holds a message with a positive x-delay (delayed.go): then
// routed is true (the message was taken; a mandatory publisher gets no basic.return) and
// the queues are not known yet.
func (v *Vhost) Publish(x *Exchange, msg *queue.Message, keys []string, c Confirm, s *Scratch) (routed, refused bool) {
	x.publishIn.Add(1)
	var xid string
	if x.dedup != nil {
		var dup bool
		if xid, dup = x.dedup.admit(msg); dup {
			// Taken before: confirmed, not returned, routed nowhere (dedup.go).
			s.queues = s.queues[:0]
			return true, false
		}
	}
	if x.delay != nil {
		if ms, ok := exchange.Delay(msg.Properties.Headers); ok {
			s.queues = s.queues[:0]
			routed, refused = x.delay.hold(msg, keys, ms, c)
			if refused && x.dedup != nil {
				x.dedup.forget(xid) // not stored: a retry must not be a duplicate
			}
			return routed, refused
		}
	}
	return v.publishNow(x, xid, msg, keys, c, s)
}

// publishNow is Publish without holding: routing through x now. xid is the id x's
// deduplication cache admitted ("" when none), forgotten again if no queue takes the message.
func (v *Vhost) publishNow(x *Exchange, xid string, msg *queue.Message, keys []string, c Confirm, s *Scratch) (routed, refused bool) {
	qs := v.route(x, keys, &msg.Properties, s)
	qs, dropped := dedupQueues(msg, qs)
	s.queues = qs
	if len(qs) > 0 {
		x.publishOut.Add(uint64(len(qs)))
	}
	stored := v.writers(msg, qs)
	if stored > 0 && c != nil && c.Nackable() && v.st.Full() {
		// The store would refuse the write: nack now, and enqueue the message nowhere.
		v.forgetIDs(x, xid, msg, qs)
		s.queues = s.queues[:0]
		return false, true
	}
	routed, refused = v.enqueue(msg, qs, stored, c, s)
	if refused && !routed && x.dedup != nil {
		x.dedup.forget(xid) // no queue took it: a retry must not be a duplicate
	}
	return routed || dropped, refused
}

// forgetIDs undoes the deduplication admits of a message that is refused as a whole.
func (v *Vhost) forgetIDs(x *Exchange, xid string, msg *queue.Message, qs []*Queue) {
	if x.dedup != nil {
		x.dedup.forget(xid)
	}
	for _, q := range qs {
		forgetQueueID(q, msg)
	}
}

// Routed is how many queues the last Publish with s routed its message to, whether or not
// they took it (RabbitMQ's messages_routed counts these).
func (s *Scratch) Routed() int { return len(s.queues) }

// Congested returns a queue among those the last Publish with s enqueued on that paces its
// publishers now (queue.Queue.Congested), or nil.
func (s *Scratch) Congested() *queue.Queue {
	for _, q := range s.queues {
		if q.remote.Load() == nil && q.Core().Congested() {
			return q.Core()
		}
	}
	return nil
}

// writers is how many of qs write msg's record at publish: durable queues held here, for a
// persistent message, with a store.
func (v *Vhost) writers(msg *queue.Message, qs []*Queue) int {
	n := 0
	if msg.Persistent && v.st != nil {
		for _, q := range qs {
			if q.stored && q.remote.Load() == nil {
				n++
			}
		}
	}
	return n
}

// sharers is how many of qs keep msg's record among the store's queue records, which can
// refer to one shared body: writers, less the quorum queues this node leads in a cluster,
// whose journal is their Raft log (it keeps the body in its own entries and would never
// release a reference to a shared one).
func (v *Vhost) sharers(qs []*Queue, stored int) int {
	n := stored
	for _, q := range qs {
		if q.stored && q.remote.Load() == nil && q.Replicated() {
			n--
		}
	}
	return n
}

// enqueue publishes msg to the queues it was routed to, writing its body once when several
// durable queues keep it, and reports whether any queue took it and whether any refused it.
// stored is how many of qs write its record (writers).
// With s (nil for a dead-lettered message) a confirmed message to a quorum queue of a
// cluster is resent while the queue's leadership moves (resend.go), unless s.NoResend.
func (v *Vhost) enqueue(msg *queue.Message, qs []*Queue, stored int, c Confirm, s *Scratch) (routed, refused bool) {
	if stored > 1 {
		if n := v.sharers(qs, stored); n > 1 {
			v.shareBody(msg, n, c)
		}
	}
	// A confirmed message that is written anywhere is held in every queue until its writes
	// are durable: if one fails, the nack is the truth (queue/held.go).
	hold := stored > 0 && c != nil && c.Nackable()
	if s != nil {
		s.moved = false
	}
	for _, q := range qs {
		if q.declared.quorum && c != nil && s != nil && !s.NoResend && v.fwd.get() != nil {
			switch v.publishResending(q, msg, c) {
			case queue.Enqueued:
				routed = true
			case queue.Refused:
				refused = true
				forgetQueueID(q, msg)
			default:
				forgetQueueID(q, msg)
			}
			continue
		}
		if node := q.remote.Load(); node != nil {
			// Held by another node: forwarded there when the cluster forwards (forward.go).
			if f := v.fwd.get(); f != nil {
				f.Forward(v, q, *node, msg, c)
				routed = true
				continue
			}
		}
		var done func(error)
		if c != nil {
			c.Add()
			done = c.Done
		}
		var res queue.Result
		var written bool
		if hold {
			var e *queue.Entry
			if res, e, written = q.Core().PublishHeld(msg, done); e != nil {
				c.Hold(q.Core(), e)
			}
		} else {
			res, written = q.Core().Publish(msg, done)
		}
		if c != nil && !written {
			c.Done(nil)
		}
		if res == queue.Enqueued {
			q.Core().Counters().Publish.Add(1)
			routed = true
		} else {
			forgetQueueID(q, msg)
		}
		// A replicated quorum queue whose core went away under this publish (its leadership
		// moved) refuses rather than drops: the publisher is nacked, never confirmed.
		moved := res == queue.Gone && q.Replicated()
		refused = refused || res == queue.Refused || moved
		if moved && s != nil {
			s.moved = true
		}
	}
	return routed, refused
}

// shareBody writes the body of a persistent message bound for n > 1 durable queues once; each
// queue's record then refers to it.
func (v *Vhost) shareBody(msg *queue.Message, n int, c Confirm) {
	st := v.st
	msg.StoreID = st.NewMessageID()
	var done func(error)
	if c != nil {
		c.Add()
		done = c.Done
	}
	var expires int64
	if msg.HasTTL {
		expires = time.Now().UnixMilli() + msg.TTL // the message's own deadline; a queue's TTL is per queue
	}
	st.PutShared(msg.StoreID, storeMessage(msg, true, expires), n, done)
}
