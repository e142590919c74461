package server

import (
	"errors"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// Queue contents for the management API: purge, get and publish as a user, through the same
// queue and model calls as queue.purge, basic.get and a confirmed basic.publish, so they count,
// persist, route and dead-letter as the AMQP methods do.

// PurgeAs empties queue name in vh as user, as queue.purge does, and returns how many ready
// messages it dropped; a missing queue is ErrNotFound.
func (s *Server) PurgeAs(user, vh, name string) (int, error) {
	v, err := s.apiVhost(vh)
	if err != nil {
		return 0, err
	}
	if !v.HasQueue(name) {
		return 0, ErrNotFound
	}
	q, err := v.QueueFor(nil, name)
	if err != nil {
		return 0, err
	}
	if err := s.checkUserAccess(user, vh, permRead, resQueue, name); err != nil {
		return 0, err
	}
	return q.Core().Purge(), nil
}

// GetMode is what GetAs does with the messages it takes: the management API's ackmode.
type GetMode int

// Get modes, RabbitMQ's ackmodes.
const (
	// GetRequeue (ack_requeue_true): the messages go back to their places, redelivered.
	GetRequeue GetMode = iota
	// GetAck (ack_requeue_false): the messages are taken for good.
	GetAck
	// GetRejectRequeue (reject_requeue_true): rejected with requeue; as GetRequeue.
	GetRejectRequeue
	// GetReject (reject_requeue_false): rejected without requeue, so dead-lettered when the
	// queue has a dead-letter exchange.
	GetReject
)

// GotMessage is one message GetAs took, as basic.get-ok and its content describe it.
type GotMessage struct {
	Exchange, RoutingKey string
	Redelivered          bool
	// Remaining is the message count of basic.get-ok: ready messages left after this one.
	Remaining  int
	Properties amqpwire.Properties
	Body       []byte
}

// GetAs takes up to count messages from queue name in vh as user, as that many basic.get
// calls would (stopping at the first empty one), and settles them as mode says once all are
// taken, so a requeued message is not taken twice.
func (s *Server) GetAs(user, vh, name string, count int, mode GetMode) ([]GotMessage, error) {
	v, err := s.apiVhost(vh)
	if err != nil {
		return nil, err
	}
	q, err := v.QueueFor(nil, name)
	if err != nil {
		return nil, err
	}
	if err := s.checkUserAccess(user, vh, permRead, resQueue, name); err != nil {
		return nil, err
	}
	if err := q.CheckLocal(); err != nil {
		return nil, err
	}
	noAck := mode == GetAck
	core := q.Core()
	var out []GotMessage
	var taken []*queue.Entry
	for range max(count, 0) {
		e, remaining := core.Get(noAck)
		if e == nil {
			s.counters.getEmpty.Add(1)
			break
		}
		s.counters.delivered(true, noAck, e.Redelivered)
		if !noAck {
			taken = append(taken, e)
		}
		out = append(out, GotMessage{Exchange: e.Msg.Exchange, RoutingKey: e.Msg.RoutingKey, Redelivered: e.Redelivered,
			Remaining: remaining, Properties: deliveredProperties(core, e), Body: e.Msg.Body})
	}
	if len(taken) > 0 {
		if mode == GetReject {
			core.Reject(taken)
		} else {
			core.Requeue(taken)
		}
	}
	return out, nil
}

// deliveredProperties are the properties a consumer would get: with x-delivery-count on a
// queue with a delivery limit (deliveryProperties, decoded).
func deliveredProperties(q *queue.Queue, e *queue.Entry) amqpwire.Properties {
	p := e.Msg.Properties
	if f := q.Features(); e.Deliveries <= 1 || (f.DeliveryLimit < 0 && !f.Quorum) {
		return p
	}
	h, err := amqpwire.AppendField(removeField(p.Headers, "x-delivery-count"), "x-delivery-count", int64(e.Deliveries-1))
	if err != nil {
		return p
	}
	p.Headers = h
	p.Flags |= amqpwire.FlagHeaders
	return p
}

// PublishAs publishes msg (exchange, routing key, properties and body set; RawProperties are
// made here) to exchange in vh as user, as a confirmed, mandatory basic.publish, and returns
// once the publish is settled: whether a queue took the message. A message a queue refused
// (x-overflow reject-publish) or the store failed to write is ErrPublishRefused.
func (s *Server) PublishAs(user, vh string, msg *queue.Message) (bool, error) {
	v, err := s.apiVhost(vh)
	if err != nil {
		return false, err
	}
	x, err := s.apiPublishTarget(user, v, msg)
	if err != nil {
		return false, err
	}
	keys, err := appendRoutingKeys(nil, msg)
	if err != nil {
		return false, err
	}
	cn := &s.counters
	cn.received.Add(1)
	cn.receivedConfirm.Add(1)
	routed, ok := s.publishConfirmed(v, x, msg, keys)
	routed = (x.Name() == "" && s.deliverReplies(v, msg, keys)) || routed // direct reply-to (replyto.go)
	if !routed {
		cn.unroutableReturned.Add(1) // the API's publishes are mandatory
	}
	if !ok {
		return routed, ErrPublishRefused
	}
	cn.confirmed.Add(1)
	return routed, nil
}

// ErrPublishRefused: a queue refused the message or its write failed (a publisher would have
// had basic.nack).
var ErrPublishRefused = errors.New("publish refused")

// apiPublishTarget checks a publish of msg by user as channel.publishTarget and
// channel.publish do, fills in what publish derives from the properties, and returns the
// exchange.
func (s *Server) apiPublishTarget(user string, v *vhost.Vhost, msg *queue.Message) (*vhost.Exchange, error) {
	if size, limit := len(msg.Body), s.cfg.MaxMessageSize; size > limit {
		return nil, errPublishPrecondition("message size %d is larger than configured max size %d", size, limit)
	}
	if err := s.checkUserAccess(user, v.Name(), permWrite, resExchange, msg.Exchange); err != nil {
		return nil, err
	}
	x, err := v.Exchange(msg.Exchange)
	if err != nil {
		return nil, err
	}
	if x.Internal() {
		return nil, amqpwire.NewChannelError(amqpwire.CodeAccessRefused, amqpwire.ClassBasic, amqpwire.MethodBasicPublish,
			"cannot publish to internal exchange '%s' in vhost '%s'", msg.Exchange, v.Name())
	}
	if err := s.checkUserTopic(user, v.Name(), permWrite, x.Kind(), x.Name(), msg.RoutingKey); err != nil {
		return nil, err
	}
	p := &msg.Properties
	if p.Flags&amqpwire.FlagReplyTo != 0 && p.ReplyTo == replyToQueue {
		return nil, errPublishPrecondition("fast reply consumer does not exist") // the API consumes nothing
	}
	if p.Flags&amqpwire.FlagUserID != 0 && p.UserID != user {
		return nil, errPublishPrecondition("user_id property set to '%s' but authenticated user was '%s'", p.UserID, user)
	}
	if p.Flags&amqpwire.FlagExpiration != 0 {
		ttl, err := parseExpiration(p.Expiration)
		if err != nil {
			return nil, err
		}
		msg.HasTTL, msg.TTL = true, ttl
	}
	msg.Persistent = p.Flags&amqpwire.FlagDeliveryMode != 0 && p.DeliveryMode == 2
	msg.RawProperties = p.Append(nil)
	return x, nil
}

// publishConfirmed publishes msg to x with keys and waits until every queue that took it
// has it (persistent messages in durable queues: on disk). It reports whether a queue took
// it and whether nothing refused it and every write succeeded.
func (s *Server) publishConfirmed(v *vhost.Vhost, x *vhost.Exchange, msg *queue.Message, keys []string) (routed, ok bool) {
	w := newAPIWait()
	var scratch vhost.Scratch
	routed, refused := v.Publish(x, msg, keys, w, &scratch)
	if n := scratch.Routed(); n > 0 {
		s.counters.routed.Add(uint64(n))
	}
	w.Done(nil)
	<-w.done
	w.settle()
	if st := s.cfg.Store; st != nil {
		st.WaitBelow(s.res.storeBacklogLimit())
	}
	return routed, !refused && !w.failed.Load()
}

// apiWait is the vhost.Confirm of a management API publish: it counts the publish's store
// writes, holds its queue entries until they are durable, and closes done when the last
// write is done. The waiting request settles the entries (settle), so the store's writer
// goroutine takes no queue lock.
type apiWait struct {
	remaining atomic.Int32
	failed    atomic.Bool
	held      []heldEntry
	done      chan struct{}
}

var _ vhost.Confirm = (*apiWait)(nil)

// newAPIWait returns a wait holding one count, dropped by the publisher once Publish returned.
func newAPIWait() *apiWait {
	w := &apiWait{done: make(chan struct{})}
	w.remaining.Store(1)
	return w
}

func (w *apiWait) Add()           { w.remaining.Add(1) }
func (w *apiWait) Nackable() bool { return true }

// Hold is called by the publishing goroutine before it drops its count.
func (w *apiWait) Hold(q *queue.Queue, e *queue.Entry) { w.held = append(w.held, heldEntry{q, e}) }

func (w *apiWait) Done(err error) {
	if err != nil {
		w.failed.Store(true)
	}
	if w.remaining.Add(-1) == 0 {
		close(w.done)
	}
}

// settle releases the held entries, or withdraws them when a write failed; after done.
func (w *apiWait) settle() { settleHeld(w.held, w.failed.Load()) }

// RedriveResult is what a redrive did.
type RedriveResult struct {
	// Moved messages are in the queue they died in again, and gone from the dead-letter queue.
	Moved int
	// Skipped messages were looked at but stay: no x-death, their queue is gone, or it
	// refused them. They keep their places, marked redelivered.
	Skipped int
	// Left is how many ready messages the dead-letter queue has afterwards.
	Left int
}

// RedriveAs moves messages of the dead-letter queue name in vh back to the queue named in the
// first entry of their x-death header (the queue they last died in), as user (read on the
// dead-letter queue, write on the default exchange). It looks at up to limit messages from
// the head (all the queue holds when it starts if limit < 0). Each is published through the
// default exchange with the queue's name as routing key, so only that queue gets it, with its
// properties and headers as they are; it is removed from the dead-letter queue only once the
// copy is enqueued (for a persistent message in a durable queue: written), else it stays.
func (s *Server) RedriveAs(user, vh, name string, limit int) (RedriveResult, error) {
	var res RedriveResult
	v, err := s.apiVhost(vh)
	if err != nil {
		return res, err
	}
	q, err := v.QueueFor(nil, name)
	if err != nil {
		return res, err
	}
	if err := s.checkUserAccess(user, vh, permRead, resQueue, name); err != nil {
		return res, err
	}
	if err := s.checkUserAccess(user, vh, permWrite, resExchange, ""); err != nil {
		return res, err
	}
	x, err := v.Exchange("")
	if err != nil {
		return res, err
	}
	core := q.Core()
	n := core.Stats().Ready
	if limit >= 0 {
		n = min(n, limit)
	}
	var skipped []*queue.Entry
	for range n {
		e, _ := core.Get(false)
		if e == nil {
			break
		}
		target := deathQueue(e.Msg.Properties.Headers)
		if target == "" || target == name || !v.HasQueue(target) {
			skipped = append(skipped, e)
			continue
		}
		m := e.Msg
		copied := &queue.Message{RoutingKey: target, Properties: m.Properties, RawProperties: m.RawProperties,
			Body: m.Body, Persistent: m.Persistent, HasTTL: m.HasTTL, TTL: m.TTL}
		if routed, ok := s.publishConfirmed(v, x, copied, []string{target}); !routed || !ok {
			skipped = append(skipped, e)
			continue
		}
		core.Settle([]*queue.Entry{e})
		res.Moved++
	}
	if len(skipped) > 0 {
		core.Requeue(skipped)
	}
	res.Skipped = len(skipped)
	res.Left = core.Stats().Ready
	if res.Moved > 0 || res.Skipped > 0 {
		s.log.Info().Str("vhost", vh).Str("queue", name).Str("user", user).Int("moved", res.Moved).
			Int("skipped", res.Skipped).Msg("redrive of a dead-letter queue")
	}
	return res, nil
}

// deathQueue is the queue of the first (latest) x-death entry in headers, "" when there is
// none.
func deathQueue(headers amqpwire.Table) string {
	v, ok, err := headers.Get("x-death")
	if !ok || err != nil {
		return ""
	}
	deaths, isArray := v.([]any)
	if !isArray || len(deaths) == 0 {
		return ""
	}
	first, isTable := deaths[0].(amqpwire.Table)
	if !isTable {
		return ""
	}
	q, ok, err := first.Get("queue")
	if !ok || err != nil {
		return ""
	}
	switch name := q.(type) {
	case string:
		return name
	case []byte:
		return string(name)
	}
	return ""
}
