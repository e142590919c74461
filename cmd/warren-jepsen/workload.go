package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// confirmTimeout is how long a publisher waits for an outstanding confirm before it gives its
// connection up (the messages stay unconfirmed) and reconnects.
const confirmTimeout = 20 * time.Second

// workload is the run's clients: publishers with confirms and consumers with manual acks,
// each reconnecting after its connection drops.
type workload struct {
	ns        *nodes
	h         *History
	log       zerolog.Logger
	queue     string
	clustered bool
	rate      int // messages per second per publisher
	// consumeRate caps each consumer's messages per second (0: no cap) so that a backlog
	// builds up and the faults hit a broker with messages stored.
	consumeRate int
	window      int // unconfirmed messages per publisher
	prefetch    int
}

func (w *workload) url(n *node) string { return "amqp://guest:guest@" + n.amqp + "/" }

// dial connects to n and declares the run's queue: a quorum queue in a cluster, a durable
// classic queue on a single node.
func (w *workload) dial(n *node) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.DialConfig(w.url(n), amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US", Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", n.name, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("channel on %s: %w", n.name, err)
	}
	var args amqp.Table
	if w.clustered {
		args = amqp.Table{"x-queue-type": "quorum"}
	}
	if _, err := ch.QueueDeclare(w.queue, true, false, false, false, args); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("declare %s on %s: %w", w.queue, n.name, err)
	}
	return conn, ch, nil
}

// nodeFor is the node of a client's attempt'th connection: its home node first, then the
// next ones in turn.
func (w *workload) nodeFor(home, attempt int) *node {
	return w.ns.list[(home+attempt)%len(w.ns.list)]
}

// loop runs session until ctx ends, reconnecting after each failure.
func (w *workload) loop(ctx context.Context, client string, home int, session func(*node) error) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		n := w.nodeFor(home, attempt)
		err := session(n)
		if err == nil || ctx.Err() != nil {
			return
		}
		w.log.Debug().Str("client", client).Str("node", n.name).Err(err).Msg("connection lost; reconnecting")
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// publisher publishes persistent messages "pI-000001", ... until ctx ends, each with a
// confirm; at the end it waits for its outstanding confirms.
func (w *workload) publisher(ctx context.Context, idx, home int) {
	name := fmt.Sprintf("p%d", idx+1)
	seq := 0
	w.loop(ctx, name, home, func(n *node) error { return w.publishSession(ctx, name, n, &seq) })
}

func (w *workload) publishSession(ctx context.Context, name string, n *node, seq *int) error {
	conn, ch, err := w.dial(n)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("confirm.select on %s: %w", n.name, err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, w.window+1))
	returns := ch.NotifyReturn(make(chan amqp.Return, w.window+1))
	pending := map[uint64]string{}
	returned := map[string]bool{}
	drainReturns := func() {
		for {
			select {
			case r, ok := <-returns:
				if !ok {
					returns = nil // the channel closed
					return
				}
				returned[r.MessageId] = true
				w.h.addDetail(name, n.name, opReturn, r.MessageId, fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText))
			default:
				return
			}
		}
	}
	tick := time.NewTicker(time.Second / time.Duration(w.rate))
	defer tick.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	var tag uint64
	progress := time.Now()
	for {
		var next <-chan time.Time
		var done <-chan struct{}
		if ctx.Err() == nil {
			done = ctx.Done()
			if len(pending) < w.window {
				next = tick.C
			}
		} else if len(pending) == 0 {
			return nil
		}
		select {
		case <-done:
		case <-next:
			*seq++
			id := fmt.Sprintf("%s-%06d", name, *seq)
			w.h.add(name, n.name, opPublish, id)
			err := ch.PublishWithContext(context.Background(), "", w.queue, true, false, amqp.Publishing{
				MessageId: id, Body: []byte(id), DeliveryMode: amqp.Persistent, ContentType: "text/plain"})
			if err != nil {
				return fmt.Errorf("publish on %s: %w", n.name, err)
			}
			tag++
			pending[tag] = id
		case c, ok := <-confirms:
			if !ok {
				return fmt.Errorf("channel on %s closed with %d confirms outstanding", n.name, len(pending))
			}
			drainReturns() // a return comes before its message's ack
			id, known := pending[c.DeliveryTag]
			if !known {
				continue
			}
			delete(pending, c.DeliveryTag)
			progress = time.Now()
			if c.Ack {
				w.h.add(name, n.name, opAck, id)
			} else {
				w.h.add(name, n.name, opNack, id)
			}
		case r, ok := <-returns:
			if !ok {
				returns = nil // the channel closed: its confirms channel says so too
				continue
			}
			returned[r.MessageId] = true
			w.h.addDetail(name, n.name, opReturn, r.MessageId, fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText))
		case <-check.C:
			if len(pending) > 0 && time.Since(progress) > confirmTimeout {
				return fmt.Errorf("no confirm from %s for %s (%d outstanding)", n.name, confirmTimeout, len(pending))
			}
		}
	}
}

// consumer consumes with manual acks until ctx ends.
func (w *workload) consumer(ctx context.Context, idx, home int) {
	name := fmt.Sprintf("c%d", idx+1)
	w.loop(ctx, name, home, func(n *node) error {
		_, err := w.consume(ctx, name, n, 0)
		return err
	})
}

// consume receives and acks messages from n until ctx ends; with idle > 0 it also stops (and
// returns true) once nothing came for idle and the queue is empty.
func (w *workload) consume(ctx context.Context, name string, n *node, idle time.Duration) (bool, error) {
	conn, ch, err := w.dial(n)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if err := ch.Qos(w.prefetch, 0, false); err != nil {
		return false, fmt.Errorf("basic.qos on %s: %w", n.name, err)
	}
	deliveries, err := ch.Consume(w.queue, name, false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("basic.consume on %s: %w", n.name, err)
	}
	var pace <-chan time.Time
	if w.consumeRate > 0 && idle == 0 {
		t := time.NewTicker(time.Second / time.Duration(w.consumeRate))
		defer t.Stop()
		pace = t.C
	}
	var idleC <-chan time.Time
	var timer *time.Timer
	if idle > 0 {
		timer = time.NewTimer(idle)
		defer timer.Stop()
		idleC = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case d, ok := <-deliveries:
			if !ok {
				return false, fmt.Errorf("consumer on %s: channel closed", n.name)
			}
			w.h.add(name, n.name, opDeliver, d.MessageId)
			if pace != nil {
				select {
				case <-pace:
				case <-ctx.Done():
				}
			}
			if err := d.Ack(false); err != nil {
				return false, fmt.Errorf("ack on %s: %w", n.name, err)
			}
			if timer != nil {
				timer.Reset(idle)
			}
		case <-idleC:
			q, err := ch.QueueDeclarePassive(w.queue, true, false, false, false, nil)
			if err != nil {
				return false, fmt.Errorf("queue.declare passive on %s: %w", n.name, err)
			}
			if q.Messages == 0 {
				return true, nil
			}
			timer.Reset(idle)
		}
	}
}

// drain empties the queue with a fresh consumer on any node that answers, within timeout.
func (w *workload) drain(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		n := w.nodeFor(0, attempt)
		empty, err := w.consume(ctx, "drain", n, time.Second)
		if empty {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if last == nil {
		last = errors.New("the queue never emptied")
	}
	return fmt.Errorf("drain within %s: %w", timeout, last)
}

// run starts the publishers and consumers; stop ends the publishers (after their
// outstanding confirms), then the consumers.
func (w *workload) run(publishers, consumers int) (stop func()) {
	pubCtx, stopPub := context.WithCancel(context.Background())
	conCtx, stopCon := context.WithCancel(context.Background())
	var pubs, cons sync.WaitGroup
	nn := len(w.ns.list)
	for i := 0; i < publishers; i++ {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			w.publisher(pubCtx, i, i%nn)
		}()
	}
	for i := 0; i < consumers; i++ {
		cons.Add(1)
		go func() {
			defer cons.Done()
			// consumers sit on the nodes after the publishers' (j != i when nodes > 1)
			w.consumer(conCtx, i, (i+1)%nn)
		}()
	}
	return func() {
		stopPub()
		pubs.Wait()
		stopCon()
		cons.Wait()
	}
}
