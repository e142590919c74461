// Package queue is Warren's queue core: a ready list of messages, consumers with credit, unacked
// accounting and requeue order. It is plain methods guarded by a short lock, with no sockets,
// frames or channels: the server adapts its channels to the Consumer interface.
//
// It is a deterministic state machine: its time comes from the Clock in its Options (deadlines
// and timers, clock.go), and it never waits for the disk under its lock: writes are submitted to
// the Journal, and reads are requested and taken in by a later call (pagein.go). Its scenario
// tests (testdata/*.txt, run by scenario_test.go) drive it with a fake clock and a fake journal.
package queue

import (
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
)

// Message is one published message. Every queue the message was routed to shares the same
// *Message; it is never modified after publish.
type Message struct {
	Exchange   string
	RoutingKey string
	// Properties are the decoded content-header properties.
	Properties amqpwire.Properties
	// RawProperties is the encoded property flags and list, sent to consumers as they came.
	RawProperties []byte
	Body          []byte
	// Persistent is delivery-mode 2: the message is written when it enters a durable queue.
	Persistent bool
	// StoreID names the message's shared body in the store when it went to several durable
	// queues; 0 when each queue's record holds the body inline.
	StoreID uint64
	// HasTTL and TTL are the message's own time to live in milliseconds (the expiration
	// property); the lower of it and the queue's x-message-ttl applies.
	HasTTL bool
	TTL    int64
	// BCC are the routing keys of the BCC header, which is removed before delivery: a
	// dead-lettered copy is routed with them again, as in RabbitMQ.
	BCC []string
}

// Size is what a message counts for in byte limits: its body, as RabbitMQ counts it.
func (m *Message) Size() int { return len(m.Body) }

// Entry is a message's place in one queue.
type Entry struct {
	Msg *Message
	// Seq is the entry's position in its queue: a requeued entry goes back to it.
	Seq uint64
	// Redelivered is set once the entry was delivered and then returned to the queue.
	Redelivered bool
	// Deliveries counts how often the entry was handed to a consumer or basic.get.
	Deliveries uint32
	// Stored is set once a record of the entry was submitted to the journal: acking it must
	// remove the record.
	Stored bool
	// zeroTTL is set when a TTL of 0 applied at publish: the entry goes to a consumer waiting
	// then or nowhere, and dies if it is requeued.
	zeroTTL bool
	// Expires is the entry's deadline in Unix milliseconds (the lower of the message's and the
	// queue's TTL, counted from when it entered this queue), or 0.
	Expires int64
	// held keeps the entry from delivery until its publish is settled (Queue.Release or
	// Withdraw); heldDeath is why it died meanwhile, dead-lettered only once released. Both
	// are guarded by the queue.
	held      bool
	heldDeath Reason
	// committed is set by the journal's callback once the record is durable.
	committed atomic.Bool
	// gone marks an entry that left the backlog from the middle (expired); expIdx is its place
	// in the backlog's expiry heap plus one, 0 when not there. Both are guarded by the queue.
	gone   bool
	expIdx int
}
