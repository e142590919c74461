package server

import (
	"sync/atomic"

	"github.com/warrenmq/warren/server/vhost"
)

// counters are the broker-wide message and churn counters that a metrics endpoint reads
// (RabbitMQ's global counters and churn metrics). The hot path pays one atomic add per event
// and no lock; each field counts from start and never goes down.
type counters struct {
	received, receivedConfirm             atomic.Uint64
	routed                                atomic.Uint64
	unroutableDropped, unroutableReturned atomic.Uint64
	confirmed                             atomic.Uint64
	deliveredConsumeAutoAck               atomic.Uint64
	deliveredConsumeManualAck             atomic.Uint64
	deliveredGetAutoAck                   atomic.Uint64
	deliveredGetManualAck                 atomic.Uint64
	getEmpty                              atomic.Uint64
	redelivered                           atomic.Uint64
	acknowledged                          atomic.Uint64
	deliveryTimeouts, lateAcks            atomic.Uint64
	connectionsOpened, connectionsClosed  atomic.Uint64
	channelsOpened, channelsClosed        atomic.Uint64
	queuesDeclared                        atomic.Uint64
	// sizes is the message size histogram: one counter per bucket (not cumulative) and the
	// sum of the sizes.
	sizes   [MessageSizeBuckets]atomic.Uint64
	sizeSum atomic.Uint64
}

// MessageSizeBuckets is the number of buckets of the message size histogram, +Inf included.
const MessageSizeBuckets = 9

// MessageSizeBounds returns the upper bounds, in bytes, of the message size histogram's
// buckets but the last (+Inf, larger bodies): RabbitMQ's (rabbit_msg_size_metrics).
func MessageSizeBounds() [MessageSizeBuckets - 1]uint64 {
	return [...]uint64{100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 50_000_000, 100_000_000}
}

// observeSize counts a published message of size body bytes in the histogram: a bucket
// counter and the sum, an atomic add each, no lock and no allocation.
func (c *counters) observeSize(size int) {
	n := uint64(size)
	i := 0
	for _, bound := range MessageSizeBounds() {
		if n <= bound {
			break
		}
		i++
	}
	c.sizes[i].Add(1)
	c.sizeSum.Add(n)
}

// delivered counts one delivery: by basic.get or to a consumer, with or without acks, and
// whether it was a redelivery.
func (c *counters) delivered(get, noAck, redelivered bool) {
	if redelivered {
		c.redelivered.Add(1)
	}
	switch {
	case get && noAck:
		c.deliveredGetAutoAck.Add(1)
	case get:
		c.deliveredGetManualAck.Add(1)
	case noAck:
		c.deliveredConsumeAutoAck.Add(1)
	default:
		c.deliveredConsumeManualAck.Add(1)
	}
}

// Stats is a snapshot of the broker's counters and resource state, for metrics. Counters
// count from start; the rest is the state now.
type Stats struct {
	// Messages published (basic.publish, counted when the message is complete), and those of
	// them published on a channel in confirm mode.
	MessagesReceived, MessagesReceivedConfirm uint64
	// MessagesRouted counts the queues messages were routed to (one message to three queues
	// counts three, as RabbitMQ's messages_routed); messages no queue took were dropped (not
	// mandatory) or returned with basic.return (mandatory).
	MessagesRouted, MessagesUnroutableDropped, MessagesUnroutableReturned uint64
	// MessagesConfirmed counts publishes answered with basic.ack.
	MessagesConfirmed uint64
	// Deliveries to consumers and by basic.get, by ack mode; GetEmpty counts basic.get-empty.
	DeliveredConsumeAutoAck, DeliveredConsumeManualAck uint64
	DeliveredGetAutoAck, DeliveredGetManualAck         uint64
	GetEmpty                                           uint64
	// MessagesRedelivered counts deliveries (consume or get) with the redelivered flag.
	MessagesRedelivered uint64
	// MessagesAcknowledged counts messages settled by basic.ack.
	MessagesAcknowledged uint64
	// DeliveryTimeouts counts deliveries a queue's x-delivery-timeout took back (requeued or
	// dead-lettered); LateAcks the acks, nacks and rejects of such deliveries, ignored.
	DeliveryTimeouts, LateAcks uint64
	// MessageSizes counts published messages by body size, per bucket of MessageSizeBounds
	// (not cumulative; the last is larger than every bound); MessageSizeSum is their bytes.
	MessageSizes   [MessageSizeBuckets]uint64
	MessageSizeSum uint64
	// Connections that completed connection.open, and those of them that closed since;
	// channels opened and closed.
	ConnectionsOpened, ConnectionsClosed uint64
	ChannelsOpened, ChannelsClosed       uint64
	// QueuesDeclared counts successful non-passive queue.declare methods, QueuesCreated those
	// that made a queue, QueuesDeleted queues removed for any reason.
	QueuesDeclared, QueuesCreated, QueuesDeleted uint64

	// Connections and Channels are open now.
	Connections, Channels uint64
	// MemoryUsed is the process's memory at the resource monitor's last sample; MemoryLimit
	// the memory alarm's threshold (0: none). DiskFree is the data dir's free space (DiskFreeKnown
	// false without a store); DiskFreeLimit the disk alarm's threshold (negative: none).
	MemoryUsed, MemoryLimit int64
	DiskFree                uint64
	DiskFreeKnown           bool
	DiskFreeLimit           int64
	// MemoryAlarm and DiskAlarm are the resource alarms' state.
	MemoryAlarm, DiskAlarm bool
}

// Stats returns the broker's counters and resource state now. It takes no lock that the
// hot path takes.
func (s *Server) Stats() Stats {
	c := &s.counters
	churn := s.vhosts.Churn()
	st := Stats{
		MessagesReceived:           c.received.Load(),
		MessagesReceivedConfirm:    c.receivedConfirm.Load(),
		MessagesRouted:             c.routed.Load(),
		MessagesUnroutableDropped:  c.unroutableDropped.Load(),
		MessagesUnroutableReturned: c.unroutableReturned.Load(),
		MessagesConfirmed:          c.confirmed.Load(),
		DeliveredConsumeAutoAck:    c.deliveredConsumeAutoAck.Load(),
		DeliveredConsumeManualAck:  c.deliveredConsumeManualAck.Load(),
		DeliveredGetAutoAck:        c.deliveredGetAutoAck.Load(),
		DeliveredGetManualAck:      c.deliveredGetManualAck.Load(),
		GetEmpty:                   c.getEmpty.Load(),
		MessagesRedelivered:        c.redelivered.Load(),
		MessagesAcknowledged:       c.acknowledged.Load(),
		DeliveryTimeouts:           c.deliveryTimeouts.Load(),
		LateAcks:                   c.lateAcks.Load(),
		ConnectionsOpened:          c.connectionsOpened.Load(),
		ConnectionsClosed:          c.connectionsClosed.Load(),
		ChannelsOpened:             c.channelsOpened.Load(),
		ChannelsClosed:             c.channelsClosed.Load(),
		QueuesDeclared:             c.queuesDeclared.Load(),
		QueuesCreated:              churn.Created(),
		QueuesDeleted:              churn.Deleted(),
		MemoryUsed:                 s.res.used.Load(),
		MemoryLimit:                s.res.memoryLimit.Load(),
		DiskFreeLimit:              s.res.diskFreeLimit.Load(),
		MessageSizeSum:             c.sizeSum.Load(),
	}
	for i := range c.sizes {
		st.MessageSizes[i] = c.sizes[i].Load()
	}
	// Closed is read before opened above would let a gauge go negative between the loads;
	// the subtraction is clamped instead.
	st.Connections = sub0(st.ConnectionsOpened, st.ConnectionsClosed)
	st.Channels = sub0(st.ChannelsOpened, st.ChannelsClosed)
	if s.res.disk != nil {
		st.DiskFree, st.DiskFreeKnown = s.res.disk.DiskFree()
	}
	active := alarmKind(s.alarms.active.Load())
	st.MemoryAlarm, st.DiskAlarm = active&alarmMemory != 0, active&alarmDisk != 0
	return st
}

func sub0(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// Vhosts returns the vhosts there are now, for listings and metrics.
func (s *Server) Vhosts() []*vhost.Vhost { return s.vhostList() }
