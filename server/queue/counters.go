package queue

import "sync/atomic"

// Counters are a queue's message counters for listings and rates (RabbitMQ's queue
// message_stats). They count from the queue's creation; the broker adds to them on the hot
// path, one atomic add per event, and readers load them without a lock.
type Counters struct {
	Publish      atomic.Uint64 // messages enqueued
	Deliver      atomic.Uint64 // deliveries to consumers that ack
	DeliverNoAck atomic.Uint64 // deliveries to no-ack consumers
	Get          atomic.Uint64 // basic.get answered with a message, acks required
	GetNoAck     atomic.Uint64 // basic.get with no-ack answered with a message
	GetEmpty     atomic.Uint64 // basic.get answered with get-empty
	Redeliver    atomic.Uint64 // deliveries (consume or get) flagged redelivered
	Ack          atomic.Uint64 // deliveries settled by basic.ack
}

// Counters are q's message counters.
func (q *Queue) Counters() *Counters { return &q.counters }

// CounterValues are Counters read at one moment.
type CounterValues struct {
	Publish, Deliver, DeliverNoAck, Get, GetNoAck, GetEmpty, Redeliver, Ack uint64
}

// Load reads the counters.
func (c *Counters) Load() CounterValues {
	return CounterValues{Publish: c.Publish.Load(), Deliver: c.Deliver.Load(), DeliverNoAck: c.DeliverNoAck.Load(),
		Get: c.Get.Load(), GetNoAck: c.GetNoAck.Load(), GetEmpty: c.GetEmpty.Load(), Redeliver: c.Redeliver.Load(),
		Ack: c.Ack.Load()}
}
