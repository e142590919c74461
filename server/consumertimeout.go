package server

import (
	"fmt"
	"slices"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Acknowledgement timeouts.
//
// A delivery that needs an ack is stamped, when it is sent, with the time and the limit that
// applies to it (stamp): its queue's x-consumer-timeout, or else the broker's consumer
// timeout, which closes the channel as RabbitMQ's consumer_timeout does; or its queue's
// x-delivery-timeout when that is no longer, which takes back only the late delivery
// (requeued, or dead-lettered with reason delivery_timeout) and leaves the channel alone.
//
// Each channel has at most one timer, armed for the earliest deadline of its deliveries. When
// it fires (check), the channel looks at its unacked deliveries in tag order, handles the late
// ones, and re-arms for the next deadline. Deliveries are stamped in tag order, so the scan
// stops at the first delivery that, even with the shortest limit seen, cannot be due before
// the next deadline found: with one limit that is the first delivery not yet late. Acks do not
// touch the timer; a timer that finds its delivery acked re-arms for the next.
//
// RabbitMQ checks the oldest delivery once a minute (channel_tick_interval), so its channel
// closes between the timeout and a minute later; Warren acts at the deadline.

// ackKind is what happens to a delivery left unacknowledged past its limit.
type ackKind uint8

const (
	ackNone       ackKind = iota // no limit
	ackClose                     // consumer timeout: the channel is closed with 406
	ackRequeue                   // delivery timeout: the delivery alone is requeued
	ackDeadLetter                // delivery timeout: the delivery alone is dead-lettered
)

// lateMax bounds the delivery tags remembered as timed out, whose late acks are ignored rather
// than refused; beyond it the oldest are forgotten.
const lateMax = 1 << 16

// ackTimers is a channel's acknowledgement timeout state, guarded by channel.mu.
type ackTimers struct {
	timer    queue.Timer
	at       int64  // when timer fires (Unix ms); 0 when not armed
	gen      uint64 // counts timers armed: a superseded timer's callback that could not be stopped does nothing
	minLimit int64  // the shortest limit of the deliveries stamped since the last idle check
	// late are the tags of deliveries taken back by a delivery timeout, ascending: an ack,
	// nack or reject of one is ignored (and counted) instead of closing the channel.
	late []uint64
}

// consumerTimeoutMillis is the broker's consumer timeout in milliseconds, -1 when disabled.
func (s *Server) consumerTimeoutMillis() int64 {
	if s.cfg.ConsumerTimeout < 0 {
		return -1
	}
	return s.cfg.ConsumerTimeout.Milliseconds()
}

// stampLocked sets r's limit from its queue's timeouts and arms the channel's timer if r is
// due before it. Called with ch.mu held, before r is pushed.
func (ch *channel) stampLocked(r *unackedRec, vq *vhost.Queue) {
	t := vq.AckTimeouts()
	limit, kind := t.Consumer, ackClose
	if limit < 0 {
		limit = ch.conn.srv.consumerTimeoutMillis()
	}
	if t.Delivery >= 0 && (limit < 0 || t.Delivery <= limit) {
		limit, kind = t.Delivery, ackRequeue
		if t.DeadLetter {
			kind = ackDeadLetter
		}
	}
	if limit < 0 {
		return
	}
	a := &ch.acks
	now := ch.conn.srv.cfg.Clock.Now()
	r.at, r.limit, r.kind = now, limit, kind
	if a.timer == nil || limit < a.minLimit {
		a.minLimit = limit
	}
	ch.armLocked(now + limit)
}

// armLocked makes the channel's timer fire no later than due.
func (ch *channel) armLocked(due int64) {
	a := &ch.acks
	if a.timer != nil {
		if a.at <= due {
			return
		}
		a.timer.Stop()
	}
	a.at = due
	a.gen++
	gen := a.gen
	a.timer = ch.conn.srv.cfg.Clock.At(due, func() { ch.checkAckTimeouts(gen) })
}

// rearmLocked arms the timer for the earliest deadline of recs (deliveries put back by a
// rolled-back transaction).
func (ch *channel) rearmLocked(recs []unackedRec) {
	for _, r := range recs {
		if r.kind != ackNone {
			if ch.acks.timer == nil || r.limit < ch.acks.minLimit {
				ch.acks.minLimit = r.limit
			}
			ch.armLocked(r.at + r.limit)
		}
	}
}

// stopAckTimerLocked disarms the timer of a released channel.
func (ch *channel) stopAckTimerLocked() {
	if ch.acks.timer != nil {
		ch.acks.timer.Stop()
		ch.acks.timer, ch.acks.at = nil, 0
	}
	ch.acks.late = nil
}

// checkAckTimeouts runs when the channel's timer number gen fires, on the clock's goroutine:
// deliveries past a delivery timeout go back to their queues, one past a consumer timeout
// closes the channel, and the timer is armed for the next deadline.
func (ch *channel) checkAckTimeouts(gen uint64) {
	srv := ch.conn.srv
	ch.mu.Lock()
	a := &ch.acks
	if ch.released || gen != a.gen {
		ch.mu.Unlock()
		return
	}
	a.timer, a.at = nil, 0
	now := srv.cfg.Clock.Now()
	var late []unackedRec
	var closing *unackedRec // the first delivery past a consumer timeout
	next := int64(0)
	for _, r := range ch.unacked.recs {
		if r.e == nil || r.kind == ackNone {
			continue
		}
		if next != 0 && r.at+a.minLimit >= next {
			break // every later delivery is due after next
		}
		switch due := r.at + r.limit; {
		case due > now:
			if next == 0 || due < next {
				next = due
			}
		case r.kind == ackClose:
			if closing == nil {
				closing = &r
			}
		default:
			late = append(late, r)
		}
	}
	var taken []unackedRec
	for _, r := range late {
		taken, _ = ch.unacked.take(r.tag, false, taken)
		a.late = insertTag(a.late, r.tag)
	}
	kicks := ch.releaseCreditLocked(taken)
	switch {
	case closing != nil:
	case next != 0:
		ch.armLocked(next)
	default:
		a.minLimit = 0 // idle: the next stamp starts afresh
	}
	ch.mu.Unlock()

	if len(taken) > 0 {
		ch.expireDeliveries(taken)
	}
	kickQueues(kicks)
	if closing != nil {
		ch.consumerTimedOut(*closing)
	}
}

// expireDeliveries sends deliveries past their delivery timeout back to their queues:
// requeued or dead-lettered, in runs of one queue and one action. Each run is logged, the
// first of its queue in a while in full and the others in a summary.
func (ch *channel) expireDeliveries(recs []unackedRec) {
	srv := ch.conn.srv
	var es []*queue.Entry
	if expireForwarded(ch, recs) {
		recs = slices.DeleteFunc(slices.Clone(recs), func(r unackedRec) bool { return r.q == nil })
	}
	for i := 0; i < len(recs); {
		q, kind, first := recs[i].q, recs[i].kind, recs[i].tag
		es = es[:0]
		for ; i < len(recs) && recs[i].q == q && recs[i].kind == kind; i++ {
			es = append(es, recs[i].e)
		}
		action := "requeued"
		if kind == ackDeadLetter {
			action = "dead-lettered"
			q.DeadLetter(es, queue.DeliveryTimeout)
		} else {
			q.Requeue(es)
		}
		detail := fmt.Sprintf("%d %s from channel %d", len(es), action, ch.id)
		if srv.ackTimeoutLog.note(q.Name(), detail, time.Now()) {
			ch.log.Info().Str("queue", q.Name()).Str("action", action).Int("deliveries", len(es)).Uint64("first_tag", first).
				Msg("deliveries not acknowledged within their queue's delivery timeout were taken back (more are summarised)")
		}
	}
	srv.counters.deliveryTimeouts.Add(uint64(len(recs)))
}

// consumerTimedOut closes the channel as RabbitMQ does when a delivery outlives the consumer
// timeout (rabbit_channel:handle_consumer_timed_out): 406 with its text, no method; releasing
// the channel requeues what it held. The close is made as the connection's reader would make
// it, holding the channel's reader lock. r is the late delivery.
func (ch *channel) consumerTimedOut(r unackedRec) {
	ch.rmu.Lock()
	defer ch.rmu.Unlock()
	if ch.closing || ch.conn.forced.Load() {
		return
	}
	ch.mu.Lock()
	released := ch.released
	ch.mu.Unlock()
	if released {
		return
	}
	tag := "" // basic.get
	if r.cs != nil {
		tag = r.cs.tag
	}
	qname := ""
	if r.q != nil {
		qname = r.q.Name()
	} else if r.cs != nil {
		qname = r.cs.q.Name() // a delivery from another node (forward_consume.go)
	}
	detail := fmt.Sprintf("channel %d closed after %d ms", ch.id, r.limit)
	if ch.conn.srv.ackTimeoutLog.note(qname, detail, time.Now()) {
		ch.log.Warn().Str("queue", qname).Str("consumer", tag).Uint64("delivery_tag", r.tag).Int64("timeout_ms", r.limit).
			Msg("consumer timed out waiting for a delivery acknowledgement, closing the channel (more are summarised)")
	}
	ch.closeWith(amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
		"delivery acknowledgement on channel %d timed out. Timeout value used: %d ms. "+
			"This timeout value can be configured, see consumers doc guide to learn more", ch.id, r.limit))
}

// settleLate deals with an ack, nack or reject whose tag is not outstanding: when the tag is
// one a delivery timeout took back, it is ignored (and counted), with multiple also settling
// the outstanding deliveries before it; ok is false for a tag never delivered or already
// settled. Otherwise, after a successful take, it forgets the late tags the settle covered.
// Called with ch.mu held.
func (ch *channel) settleLate(tag uint64, multiple, found bool, recs []unackedRec) ([]unackedRec, bool) {
	a := &ch.acks
	if len(a.late) == 0 {
		return recs, found
	}
	if !found {
		if _, ok := slices.BinarySearch(a.late, tag); !ok {
			return recs, false
		}
		if multiple {
			recs = ch.unacked.takeBefore(tag, recs)
		}
	}
	n := 0
	if multiple && tag == 0 {
		n, a.late = len(a.late), a.late[:0]
	} else if i, ok := slices.BinarySearch(a.late, tag); multiple || ok {
		if ok {
			i++
		}
		if multiple {
			n, a.late = i, slices.Delete(a.late, 0, i)
		} else {
			n, a.late = 1, slices.Delete(a.late, i-1, i)
		}
	}
	if n > 0 {
		ch.conn.srv.counters.lateAcks.Add(uint64(n))
		ch.log.Debug().Uint64("delivery_tag", tag).Bool("multiple", multiple).Int("late", n).
			Msg("ignored the settlement of deliveries a delivery timeout took back")
	}
	return recs, true
}

// insertTag adds tag to the ascending tags, forgetting the oldest beyond lateMax.
func insertTag(tags []uint64, tag uint64) []uint64 {
	i, _ := slices.BinarySearch(tags, tag)
	tags = slices.Insert(tags, i, tag)
	if len(tags) > lateMax {
		tags = slices.Delete(tags, 0, len(tags)-lateMax)
	}
	return tags
}
