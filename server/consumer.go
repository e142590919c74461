package server

import (
	"sort"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

var _ vhost.Consumer = (*consumer)(nil)

// consumer is one basic.consume subscription. Its mutable fields are guarded by ch.mu.
type consumer struct {
	ch       *channel
	tag      string
	q        *vhost.Queue
	noAck    bool
	prefetch uint16 // 0 is unlimited
	// exclusive and args are basic.consume's, for listings; set at creation.
	exclusive bool
	args      amqpwire.Table

	unacked int
	pending bool // consume-ok not yet sent: deliver nothing
	// remote: the consumer is not on a local queue core but on another node's
	// (forward_consume.go): fw is its attachment there, nil while it is re-attached.
	remote    bool
	fw        *fwdAttach
	attaching bool // a re-attachment is under way
	blocked   bool // refused a delivery for lack of credit: kick its queue when credit returns
	cancelled bool
}

// Deliver implements queue.Consumer. It runs on the publisher's (or acker's) goroutine with the
// queue's lock held; it takes the channel's lock and the connection's output lock, in that order.
func (cs *consumer) Deliver(q *queue.Queue, e *queue.Entry) bool {
	ch := cs.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if cs.cancelled || cs.pending || ch.released {
		cs.blocked = cs.pending
		return false
	}
	if !cs.noAck && ((cs.prefetch > 0 && cs.unacked >= int(cs.prefetch)) ||
		(ch.globalLimit > 0 && ch.globalUnacked >= int(ch.globalLimit))) {
		cs.blocked = true
		return false
	}
	c := ch.conn
	c.wmu.Lock()
	if c.out.Buffered() >= c.srv.cfg.WriteBacklog {
		c.blocked = append(c.blocked, q)
		c.wmu.Unlock()
		return false
	}
	// Counted before the client can see the delivery.
	c.srv.counters.delivered(false, cs.noAck, e.Redelivered)
	ch.stats.delivered(q, false, cs.noAck, e.Redelivered)
	ch.nextTag++
	ch.deliver = amqpwire.BasicDeliver{
		ConsumerTag: cs.tag,
		DeliveryTag: ch.nextTag,
		Redelivered: e.Redelivered,
		Exchange:    e.Msg.Exchange,
		RoutingKey:  e.Msg.RoutingKey,
	}
	c.out.WriteMethod(ch.id, &ch.deliver)
	c.out.WriteContentRaw(ch.id, amqpwire.ClassBasic, deliveryProperties(q, e), e.Msg.Body, c.frameMax)
	c.wmu.Unlock()
	if !cs.noAck {
		r := unackedRec{tag: ch.nextTag, q: q, e: e, cs: cs}
		ch.stampLocked(&r, cs.q)
		ch.unacked.push(r)
		cs.unacked++
		ch.globalUnacked++
	}
	c.kickWriter()
	return true
}

// CancelledByServer implements vhost.Consumer: the queue went away, so the consumer is dropped
// and, if the client understands it, told with a server-sent basic.cancel.
func (cs *consumer) CancelledByServer() {
	ch := cs.ch
	ch.mu.Lock()
	if ch.consumers[cs.tag] == cs {
		delete(ch.consumers, cs.tag)
	}
	already := cs.cancelled
	cs.cancelled = true
	released := ch.released
	ch.mu.Unlock()
	if !already && !released && ch.conn.capCancelNotify {
		ch.send(&amqpwire.BasicCancel{ConsumerTag: cs.tag, NoWait: true})
	}
}

// unackedRec is one delivery awaiting ack; cs is nil for basic.get. at (Unix ms), limit (ms)
// and kind are its acknowledgement timeout (consumertimeout.go).
type unackedRec struct {
	tag   uint64
	q     *queue.Queue
	e     *queue.Entry // nil once settled
	cs    *consumer
	at    int64
	limit int64
	kind  ackKind
	// fw is where a delivery from another node came from (q is nil then); see
	// forward_consume.go.
	fw *fwdRef
}

// unackedList holds a channel's unacked deliveries in tag order. Tags only grow, so pushes
// append; acks in order pop from the front, and out-of-order acks leave holes that are
// compacted away.
type unackedList struct {
	recs  []unackedRec
	live  int
	holes int
}

func (l *unackedList) push(r unackedRec) {
	l.recs = append(l.recs, r)
	l.live++
}

func (l *unackedList) len() int { return l.live }

// index finds the live record with tag, or -1.
func (l *unackedList) index(tag uint64) int {
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].tag >= tag })
	if i < len(l.recs) && l.recs[i].tag == tag && l.recs[i].e != nil {
		return i
	}
	return -1
}

// take removes the record with tag (and, if multiple, every live record before it) and appends
// them to out in tag order. Like RabbitMQ, it fails when tag itself is not outstanding; tag 0
// with multiple means every outstanding delivery.
func (l *unackedList) take(tag uint64, multiple bool, out []unackedRec) ([]unackedRec, bool) {
	if multiple && tag == 0 {
		return l.takeAll(out), true
	}
	i := l.index(tag)
	if i < 0 {
		return out, false
	}
	if !multiple {
		out = append(out, l.recs[i])
		l.recs[i].e = nil
		l.live--
		l.holes++
		l.compact()
		return out, true
	}
	for _, r := range l.recs[:i+1] {
		if r.e != nil {
			out = append(out, r)
			l.live--
		} else {
			l.holes--
		}
	}
	clear(l.recs[:i+1])
	l.recs = l.recs[i+1:]
	l.compact()
	return out, true
}

// takeBefore removes every live record with a tag below tag (a multiple ack of a tag that is
// no longer outstanding) and appends them to out in tag order.
func (l *unackedList) takeBefore(tag uint64, out []unackedRec) []unackedRec {
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].tag >= tag })
	for _, r := range l.recs[:i] {
		if r.e != nil {
			out = append(out, r)
			l.live--
		} else {
			l.holes--
		}
	}
	clear(l.recs[:i])
	l.recs = l.recs[i:]
	l.compact()
	return out
}

// takeAll removes every live record.
func (l *unackedList) takeAll(out []unackedRec) []unackedRec {
	for _, r := range l.recs {
		if r.e != nil {
			out = append(out, r)
		}
	}
	l.recs, l.live, l.holes = nil, 0, 0
	return out
}

// restore puts records back (a rolled-back transaction's acks), keeping tag order.
func (l *unackedList) restore(rs []unackedRec) {
	if len(rs) == 0 {
		return
	}
	merged := make([]unackedRec, 0, l.live+len(rs))
	for _, r := range l.recs {
		if r.e != nil {
			merged = append(merged, r)
		}
	}
	merged = append(merged, rs...)
	sort.Slice(merged, func(i, j int) bool { return merged[i].tag < merged[j].tag })
	l.recs, l.live, l.holes = merged, len(merged), 0
}

// compact drops settled records at the front, and rebuilds when holes dominate.
func (l *unackedList) compact() {
	n := 0
	for n < len(l.recs) && l.recs[n].e == nil {
		n++
	}
	if n > 0 {
		clear(l.recs[:n])
		l.recs = l.recs[n:]
		l.holes -= n
	}
	if l.holes > 32 && l.holes > l.live {
		kept := make([]unackedRec, 0, l.live)
		for _, r := range l.recs {
			if r.e != nil {
				kept = append(kept, r)
			}
		}
		l.recs, l.holes = kept, 0
	}
}

// forEachQueue calls fn once per run of records from the same queue, in order. Records of
// deliveries from another node come in runs with a nil queue (forward_consume.go).
func forEachQueue(recs []unackedRec, fn func(q *queue.Queue, es []*queue.Entry)) {
	var es []*queue.Entry
	for i := 0; i < len(recs); {
		q := recs[i].q
		es = es[:0]
		for ; i < len(recs) && recs[i].q == q; i++ {
			es = append(es, recs[i].e)
		}
		fn(q, es)
	}
}

// deliveryProperties are the encoded properties a delivery of e carries: the message's own, plus
// an x-delivery-count header (earlier deliveries) on redeliveries from a quorum queue or a
// queue with a delivery limit, as RabbitMQ's quorum queues do.
func deliveryProperties(q *queue.Queue, e *queue.Entry) []byte {
	if f := q.Features(); e.Deliveries <= 1 || (f.DeliveryLimit < 0 && !f.Quorum) {
		return e.Msg.RawProperties
	}
	p := e.Msg.Properties
	h, err := amqpwire.AppendField(removeField(p.Headers, "x-delivery-count"), "x-delivery-count", int64(e.Deliveries-1))
	if err != nil {
		return e.Msg.RawProperties
	}
	p.Headers = h
	p.Flags |= amqpwire.FlagHeaders
	return p.Append(nil)
}

// removeField returns t without key.
func removeField(t amqpwire.Table, key string) amqpwire.Table {
	var out amqpwire.Table
	_ = t.Each(func(k string, v any) error {
		if k == key {
			return nil
		}
		var err error
		out, err = amqpwire.AppendField(out, k, v)
		return err
	})
	return out
}
