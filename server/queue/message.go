// Package queue is Warren's queue core: a ready list of messages, consumers with credit, unacked
// accounting and requeue order. It is plain methods guarded by a short lock, with no sockets,
// frames or channels: the server adapts its channels to the Consumer interface.
package queue

import "github.com/warrenmq/warren/amqpwire"

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
}
