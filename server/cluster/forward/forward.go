// Package forward carries the queue part of AMQP traffic between the nodes of a cluster. A
// client connected to node B publishes to an exchange whose bindings reach a queue that runs
// on node A (a classic queue A owns, or a quorum queue whose Raft leader is A), or consumes
// from, gets from, purges or passively declares such a queue: B routes locally (the metadata
// is replicated) and forwards the queue part to A. B's management API also asks A for A's
// report of itself (Client.Node, Local.Node), which it lists in /api/nodes.
//
// B's side is a Client; A's side is a Server over a Local, the interface the broker
// implements on its own queues, so A needs no knowledge of B. Both talk over streams of the
// node's cluster transport (raftmux, group Group): one stream per pair of nodes, opened by B,
// carrying length-prefixed binary frames (frame.go). Requests are pipelined: each has an id,
// and answers may come back in any order. Writes are coalesced in a buffer a writer goroutine
// moves to the stream, so a burst of publishes is one write. Both ends ping every
// Options.Heartbeat, and a stream on which nothing was heard for three intervals counts as
// broken (a paused or cut-off node keeps its connection open). A broken stream fails
// everything in flight on it, ends every subscription on it with an error, and makes A
// requeue what its consumers had not acknowledged.
package forward

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warrenmq/warren/amqpwire"
)

// Group is the raftmux stream group of forwarded traffic.
const Group = ^uint64(0) - 2

// Message is a publish forwarded to the node that runs the queue.
type Message struct {
	Exchange, RoutingKey string
	// Properties are the content header's raw properties (flags and fields).
	Properties []byte
	Body       []byte
	Persistent bool
}

// Delivery is a message delivered to a forwarded consumer or got by a forwarded basic.get.
type Delivery struct {
	// ID is the delivery's id on A (per subscription; per stream for gets): what B acks.
	ID          uint64
	Redelivered bool
	// DeliveryCount is how many times the message was delivered before this delivery (a
	// quorum queue's x-delivery-count, which A has also put in Properties where it applies).
	DeliveryCount uint32
	Exchange      string
	RoutingKey    string
	Properties    []byte
	Body          []byte
	// Ref is, on A, the Local's handle of the entry (for example its *queue.Entry), given
	// back in Settle; it does not cross the wire.
	Ref any
	// via is, on B, the stream a got message came by.
	via *clientConn
}

// ConsumeOptions are a forwarded basic.consume's.
type ConsumeOptions struct {
	Tag string
	// Prefetch bounds the unacknowledged deliveries (0: no bound; ignored with NoAck).
	Prefetch uint32
	// Credit, when not 0, is how many deliveries A may send before B grants more with
	// Subscription.Credit (B's flow control: it grants as its client's connection drains).
	Credit    uint32
	NoAck     bool
	Exclusive bool
	// Arguments are basic.consume's (x-priority, ...).
	Arguments amqpwire.Table
}

// SettleOp is what becomes of settled deliveries.
type SettleOp uint8

// Settle operations.
const (
	Ack     SettleOp = iota // basic.ack
	Requeue                 // basic.nack/reject with requeue=true, and what a closing channel had unacked
	Discard                 // basic.nack/reject with requeue=false: dead-letter or drop
)

// Stats are a queue's counts, for a passive queue.declare.
type Stats struct {
	// Messages are the ready ones (a passive queue.declare-ok's count); Unacked the ones
	// delivered and not acknowledged yet.
	Messages, Consumers, Unacked uint32
}

// Local is what a node offers the others on its own queues. Errors the client should see
// are *amqpwire.ChannelError (404 NOT_FOUND "no queue 'x' in vhost 'y'", 405
// RESOURCE_LOCKED, ...) or *amqpwire.ConnectionError; they come back on B with the same
// code, text and ids.
type Local interface {
	// Publish puts m into the queue. Calls for one stream come in the order B sent them.
	// done runs once (on any goroutine, maybe before Publish returns) with the outcome: nil
	// when the message is stored (with confirm: durable, for a quorum queue committed on a
	// majority), a 404 *amqpwire.ChannelError when the queue does not exist, another error
	// when the queue could not take it (B nacks). settle, when not nil, is work due before
	// the answer goes out (releasing or withdrawing the message's held entries) that must
	// not run on done's goroutine (a store's writer, which only records outcomes): the
	// Server runs it on the stream's writer goroutine, or at once if the stream is gone.
	Publish(vhost, queue string, m *Message, confirm bool, done func(err error, settle func()))
	// Consume adds a consumer that delivers to sink. sink.Deliver may be called before
	// Consume returns.
	Consume(vhost, queue string, opts ConsumeOptions, sink Sink) (LocalConsumer, error)
	// Get takes one message (nil when the queue is empty) and the count of those left.
	// Unless noAck, the returned Settler settles it.
	Get(vhost, queue string, noAck bool) (*Delivery, Settler, uint32, error)
	// Purge removes the queue's ready messages and returns how many.
	Purge(vhost, queue string) (uint32, error)
	Stats(vhost, queue string) (Stats, error)
	// Node is this node's report of itself, for another node's management API (/api/nodes):
	// a JSON object.
	Node() ([]byte, error)
}

// Settler settles delivered entries by their Refs.
type Settler interface {
	Settle(refs []any, op SettleOp)
}

// LocalConsumer is a consumer Local.Consume added.
type LocalConsumer interface {
	Settler
	// Kick tells the queue that the sink, which refused a delivery, can take more.
	Kick()
	// Cancel removes the consumer: no more deliveries. Its unsettled entries stay
	// unsettled; the Server settles them (Requeue when B's channel closed or the stream
	// broke).
	Cancel()
}

// Sink is the Server's end of a forwarded consumer, which Local delivers to.
type Sink interface {
	// Deliver sends d to B. It is called with the queue's lock held and never blocks:
	// false (d not taken) when the consumer has no credit or the stream is backlogged;
	// the Server calls LocalConsumer.Kick when that changes.
	Deliver(d *Delivery) bool
	// Cancelled ends the consumer from A's side (the queue was deleted, its leader moved
	// away); err says why and reaches B (use a *amqpwire.ChannelError such as 404 for a
	// deleted queue). Local has already removed the consumer and disposed of its entries.
	Cancelled(err error)
}

// Options tune both ends.
type Options struct {
	// Heartbeat is how often each end pings the other; a stream on which nothing was heard
	// for three intervals is broken (0: DefaultHeartbeat).
	Heartbeat time.Duration
}

func (o Options) heartbeat() time.Duration {
	if o.Heartbeat <= 0 {
		return DefaultHeartbeat
	}
	return o.Heartbeat
}

// Dialer opens a stream to a node by its cluster address (a *raftmux.Layer).
type Dialer interface {
	Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error)
}

// RemoteError is an error A reported that is not an AMQP error (for a publish: the queue
// could not store the message).
type RemoteError struct {
	Text string
}

func (e *RemoteError) Error() string { return "forward: remote node: " + e.Text }

// ErrStreamBroken is wrapped by the error of everything that was in flight on a stream that
// broke, and of every subscription it ended.
var ErrStreamBroken = errors.New("forward: stream to the queue's node broke")

// ErrUnreachable is wrapped by the error of a request to a node that could not be dialled.
var ErrUnreachable = errors.New("forward: the queue's node cannot be reached")

// ErrClosed is returned by a closed Client.
var ErrClosed = errors.New("forward: closed")

// NotFound is RabbitMQ's error for a queue that does not exist, on method class/method.
func NotFound(vhost, queue string, class, method uint16) error {
	return amqpwire.NewChannelError(amqpwire.CodeNotFound, class, method, "no queue '%s' in vhost '%s'", queue, vhost)
}

// broken wraps a stream's failure.
func broken(addr string, err error) error {
	return fmt.Errorf("%w (%s): %w", ErrStreamBroken, addr, err)
}
