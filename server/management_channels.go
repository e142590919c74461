package server

import (
	"cmp"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
)

// Per-object counters and listings of channels and consumers for the management API. Every
// counter here costs the hot path one atomic add and no lock; listings take only the locks
// the channel's own bookkeeping takes (ch.mu), briefly.

// ioCounters count a connection's socket traffic (RabbitMQ's recv_oct, recv_cnt, send_oct,
// send_cnt).
type ioCounters struct {
	recvOct, recvCnt, sendOct, sendCnt atomic.Uint64
}

// countingReader counts what is read from r in n.
type countingReader struct {
	r io.Reader
	n *ioCounters
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if k > 0 {
		c.n.recvOct.Add(uint64(k))
		c.n.recvCnt.Add(1)
	}
	return k, err
}

// countingWriter counts what is written to w in n.
type countingWriter struct {
	w io.Writer
	n *ioCounters
}

func (c countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	if k > 0 {
		c.n.sendOct.Add(uint64(k))
		c.n.sendCnt.Add(1)
	}
	return k, err
}

// chanCounters are one channel's message counters (RabbitMQ's channel message_stats) and
// what a listing reads of the state its reader goroutine owns.
type chanCounters struct {
	publish, confirm, returnUnroutable, dropUnroutable             atomic.Uint64
	deliver, deliverNoAck, get, getNoAck, getEmpty, redeliver, ack atomic.Uint64
	// confirmPublishes counts publishes in confirm mode, answered those confirmed or nacked:
	// the difference is messages_unconfirmed.
	confirmPublishes, answered atomic.Uint64
	// uncommitted publishes and acks of the open transaction.
	uncommitted, acksUncommitted atomic.Int64
	confirmMode, txMode          atomic.Bool
}

// delivered counts one delivery on the channel and on its queue q.
func (c *chanCounters) delivered(q *queue.Queue, get, noAck, redelivered bool) {
	qc := q.Counters()
	if redelivered {
		c.redeliver.Add(1)
		qc.Redeliver.Add(1)
	}
	switch {
	case get && noAck:
		c.getNoAck.Add(1)
		qc.GetNoAck.Add(1)
	case get:
		c.get.Add(1)
		qc.Get.Add(1)
	case noAck:
		c.deliverNoAck.Add(1)
		qc.DeliverNoAck.Add(1)
	default:
		c.deliver.Add(1)
		qc.Deliver.Add(1)
	}
}

// acked counts basic.acks of recs on the channel and their queues.
func (c *chanCounters) acked(recs []unackedRec) {
	c.ack.Add(uint64(len(recs)))
	for _, r := range recs {
		if r.q != nil { // nil: a delivery from another node, counted there
			r.q.Counters().Ack.Add(1)
		}
	}
}

// addChannel and removeChannel change c.channels; only the reader goroutine calls them.
func (c *conn) addChannel(ch *channel) {
	c.chmu.Lock()
	c.channels[ch.id] = ch
	c.chmu.Unlock()
}

func (c *conn) removeChannel(id uint16) {
	c.chmu.Lock()
	delete(c.channels, id)
	c.chmu.Unlock()
}

// MessageCounters are an object's message counters as RabbitMQ's message_stats names them;
// each counts from the object's start.
type MessageCounters struct {
	Publish, Confirm, ReturnUnroutable, DropUnroutable        uint64
	Deliver, DeliverNoAck, Get, GetNoAck, GetEmpty, Redeliver uint64
	Ack                                                       uint64
}

// ChannelInfo is one open channel as the management API lists it.
type ChannelInfo struct {
	Number uint16
	// Connection is the channel's connection (its name, peer, user and vhost).
	Connection                         ConnectionInfo
	Consumers                          []ConsumerInfo
	Unacked, Unconfirmed               int
	Uncommitted, AcksUncommitted       int
	PrefetchCount, GlobalPrefetchCount int
	Confirm, Transactional, Closing    bool
	Stats                              MessageCounters
}

// Name is RabbitMQ's channel name: "<connection name> (<number>)".
func (ch ChannelInfo) Name() string {
	return ch.Connection.Name + " (" + itoa(int(ch.Number)) + ")"
}

// ConsumerInfo is one consumer as the management API lists it.
type ConsumerInfo struct {
	Tag, Queue, Vhost string
	NoAck, Exclusive  bool
	Prefetch          int
	Arguments         amqpwire.Table
	// Channel is the consumer's channel number; its connection is the ChannelInfo's.
	Channel uint16
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Channels lists the open channels of the open connections, by connection name and number.
func (s *Server) Channels() []ChannelInfo {
	var out []ChannelInfo
	for _, c := range s.openConns() {
		info := c.info()
		c.chmu.Lock()
		chans := make([]*channel, 0, len(c.channels))
		for _, ch := range c.channels {
			chans = append(chans, ch)
		}
		c.chmu.Unlock()
		for _, ch := range chans {
			if ci, ok := ch.info(info); ok {
				out = append(out, ci)
			}
		}
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int {
		return cmp.Or(strings.Compare(a.Connection.Name, b.Connection.Name), cmp.Compare(a.Number, b.Number))
	})
	return out
}

// info describes ch; ok is false once the channel has closed.
func (ch *channel) info(conn ConnectionInfo) (ChannelInfo, bool) {
	st := &ch.stats
	ci := ChannelInfo{Number: ch.id, Connection: conn,
		Uncommitted: int(st.uncommitted.Load()), AcksUncommitted: int(st.acksUncommitted.Load()),
		Confirm: st.confirmMode.Load(), Transactional: st.txMode.Load(),
		Unconfirmed: int(sub0(st.confirmPublishes.Load(), st.answered.Load())),
		Stats: MessageCounters{Publish: st.publish.Load(), Confirm: st.confirm.Load(),
			ReturnUnroutable: st.returnUnroutable.Load(), DropUnroutable: st.dropUnroutable.Load(),
			Deliver: st.deliver.Load(), DeliverNoAck: st.deliverNoAck.Load(), Get: st.get.Load(),
			GetNoAck: st.getNoAck.Load(), GetEmpty: st.getEmpty.Load(), Redeliver: st.redeliver.Load(),
			Ack: st.ack.Load()}}
	ch.mu.Lock()
	if ch.released {
		ch.mu.Unlock()
		return ci, false
	}
	ci.Unacked = ch.unacked.len()
	ci.PrefetchCount, ci.GlobalPrefetchCount = int(ch.prefetchCount), int(ch.globalLimit)
	for _, cs := range ch.consumers {
		if cs.pending || cs.cancelled {
			continue
		}
		ci.Consumers = append(ci.Consumers, ConsumerInfo{Tag: cs.tag, Queue: cs.q.Name(), Vhost: ch.vh.Name(),
			NoAck: cs.noAck, Exclusive: cs.exclusive, Prefetch: int(cs.prefetch), Arguments: cs.args, Channel: ch.id})
	}
	ch.mu.Unlock()
	slices.SortFunc(ci.Consumers, func(a, b ConsumerInfo) int { return strings.Compare(a.Tag, b.Tag) })
	return ci, true
}
