package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// counters are one worker's running totals, read by the reporter while the worker runs.
// Each worker has its own, padded to a cache line, so workers on different cores do not
// share one.
type counters struct {
	published atomic.Int64
	confirmed atomic.Int64
	nacked    atomic.Int64
	consumed  atomic.Int64
	lastPub   atomic.Int64 // unix ns of the last publish, confirm and delivery
	lastConf  atomic.Int64
	lastCons  atomic.Int64
	_         [64]byte
}

// workerHeartbeat is the heartbeat the producers' and consumers' connections ask for.
// brokerHeartbeat takes the broker's own value: amqp091-go uses the broker's interval when
// asked for less than a second (and its own 10 s default when asked for 0).
const (
	workerHeartbeat = 10 * time.Second
	brokerHeartbeat = time.Millisecond
)

// dial opens one connection named for the broker's connection list.
func dial(c *config, name string) (*amqp.Connection, error) {
	return dialHeartbeat(c, name, workerHeartbeat)
}

func dialHeartbeat(c *config, name string, heartbeat time.Duration) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("warren-perf " + name)
	conn, err := amqp.DialConfig(c.URL, amqp.Config{Properties: props, Heartbeat: heartbeat})
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", name, redactURL(c.URL), err)
	}
	return conn, nil
}

// declare sets up the queues, the exchange and the bindings on a connection of its own.
// It returns how long the --topic-bindings took to bind.
func declare(c *config) (time.Duration, error) {
	conn, err := dial(c, "setup")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	for i := range c.Queues {
		if _, err := ch.QueueDeclare(c.queueName(i), c.Durable, c.AutoDelete, false, false, c.QueueArgs); err != nil {
			return 0, fmt.Errorf("declare queue %s: %w", c.queueName(i), err)
		}
	}
	if c.Exchange == "" {
		return 0, nil
	}
	if !strings.HasPrefix(c.Exchange, "amq.") {
		if err := ch.ExchangeDeclare(c.Exchange, c.ExchangeType, c.Durable, false, false, false, nil); err != nil {
			return 0, fmt.Errorf("declare exchange %s: %w", c.Exchange, err)
		}
	}
	if c.TopicBindings > 0 {
		return bindTopicKeys(conn, c)
	}
	var args amqp.Table
	if c.ExchangeType == amqp.ExchangeHeaders {
		args = amqp.Table{"x-match": "all"}
		for k, v := range c.Headers {
			args[k] = v
		}
	}
	for i := range c.Queues {
		if err := ch.QueueBind(c.queueName(i), c.BindingKey, c.Exchange, false, args); err != nil {
			return 0, fmt.Errorf("bind queue %s to %s: %w", c.queueName(i), c.Exchange, err)
		}
	}
	return 0, nil
}

// topicBindingKey and topicRoutingKey are the keys of --topic-bindings: routing key i
// matches binding key i and no other.
func topicBindingKey(i int) string { return "stock." + strconv.Itoa(i) + ".*" }
func topicRoutingKey(i int) string { return "stock." + strconv.Itoa(i) + ".tick" }

// bindLanes is how many channels bind --topic-bindings keys at once. Each queue.bind waits
// for its bind-ok, so one channel would take a round trip per key.
const bindLanes = 16

// bindTopicKeys binds the --topic-bindings keys, key i to queue i mod --queues, and returns
// how long that took.
func bindTopicKeys(conn *amqp.Connection, c *config) (time.Duration, error) {
	start := time.Now()
	var next atomic.Int64
	errs := make(chan error, bindLanes)
	var wg sync.WaitGroup
	for range min(bindLanes, c.TopicBindings) {
		ch, err := conn.Channel()
		if err != nil {
			next.Store(int64(c.TopicBindings)) // stop the lanes already running
			wg.Wait()
			return 0, err
		}
		wg.Go(func() {
			defer ch.Close()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.TopicBindings {
					return
				}
				q := c.queueName(i % c.Queues)
				if err := ch.QueueBind(q, topicBindingKey(i), c.Exchange, false, nil); err != nil {
					next.Store(int64(c.TopicBindings))
					errs <- fmt.Errorf("bind queue %s to %s with %s: %w", q, c.Exchange, topicBindingKey(i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	took := time.Since(start)
	if err := <-errs; err != nil {
		return took, err
	}
	logf("bound %d keys from %s to %d queue(s) in %.2fs", c.TopicBindings, c.Exchange, c.Queues, took.Seconds())
	return took, nil
}

// deleteQueues deletes the run's queues and exchange (--delete-queues).
func deleteQueues(c *config) error {
	conn, err := dial(c, "cleanup")
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for i := range c.Queues {
		if _, err := ch.QueueDelete(c.queueName(i), false, false, false); err != nil {
			return fmt.Errorf("delete queue %s: %w", c.queueName(i), err)
		}
	}
	if c.Exchange != "" && !c.NoDeclare && !strings.HasPrefix(c.Exchange, "amq.") {
		if err := ch.ExchangeDelete(c.Exchange, false, false); err != nil {
			return fmt.Errorf("delete exchange %s: %w", c.Exchange, err)
		}
	}
	return nil
}

var routingWords = [...]string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"}

const wordToken = "{word}"

// routingKeys returns the keys a producer cycles through: one fixed key, or for a pattern
// with {word} a table of n keys with random words, built up front so publishing allocates
// nothing.
func routingKeys(pattern string, n int, seed uint64) []string {
	if !strings.Contains(pattern, wordToken) {
		return []string{pattern}
	}
	r := xorshift(seed | 1)
	keys := make([]string, n)
	for i := range keys {
		parts := strings.Split(pattern, wordToken)
		var b strings.Builder
		for j, p := range parts {
			if j > 0 {
				b.WriteString(routingWords[r.next()%uint64(len(routingWords))])
			}
			b.WriteString(p)
		}
		keys[i] = b.String()
	}
	return keys
}

type xorshift uint64

func (x *xorshift) next() uint64 {
	v := uint64(*x)
	v ^= v << 13
	v ^= v >> 7
	v ^= v << 17
	*x = xorshift(v)
	return v
}

// producer publishes on its own connection.
type producer struct {
	id       int
	c        *config
	conn     *amqp.Connection
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
	closed   chan *amqp.Error
	blocked  chan amqp.Blocking
	exchange string
	keys     []string
	cycle    bool // take the keys in turn (--topic-bindings) rather than at random
	stats    *counters
	inflight int
}

func newProducer(c *config, id int, stats *counters) (*producer, error) {
	p := &producer{id: id, c: c, stats: stats}
	conn, err := dial(c, fmt.Sprintf("producer %d", id))
	if err != nil {
		return nil, err
	}
	p.conn = conn
	if p.ch, err = conn.Channel(); err != nil {
		conn.Close()
		return nil, err
	}
	p.closed = p.ch.NotifyClose(make(chan *amqp.Error, 1))
	p.blocked = conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	if c.Confirm > 0 {
		if err := p.ch.Confirm(false); err != nil {
			conn.Close()
			return nil, fmt.Errorf("producer %d: confirm.select: %w", id, err)
		}
		// Room for every unconfirmed message, so the library's reader never blocks on us.
		p.confirms = p.ch.NotifyPublish(make(chan amqp.Confirmation, c.Confirm+1))
	}
	if c.Exchange == "" {
		p.keys = []string{c.queueName(id % c.Queues)}
	} else if c.TopicBindings > 0 {
		p.exchange = c.Exchange
		p.keys = make([]string, c.TopicBindings)
		for i := range p.keys {
			p.keys[i] = topicRoutingKey(i)
		}
		p.cycle = true
	} else {
		p.exchange = c.Exchange
		p.keys = routingKeys(c.RoutingKey, 1024, uint64(id)*0x9e3779b97f4a7c15+1)
	}
	return p, nil
}

func (p *producer) onConfirm(cf amqp.Confirmation) {
	p.inflight--
	if cf.Ack {
		p.stats.confirmed.Add(1)
	} else {
		p.stats.nacked.Add(1)
	}
	p.stats.lastConf.Store(time.Now().UnixNano())
}

// run publishes until ctx ends or --pmessages is reached, then waits for the outstanding
// confirms (briefly, when ctx ended).
func (p *producer) run(ctx context.Context) error {
	c := p.c
	body := make([]byte, c.Size)
	for i := range body {
		body[i] = 'w'
	}
	msg := amqp.Publishing{Body: body, Headers: c.Headers, DeliveryMode: amqp.Transient}
	if c.Persistent {
		msg.DeliveryMode = amqp.Persistent
	}
	var lim *limiter
	if c.Rate > 0 {
		lim = newLimiter(c.Rate)
	}
	rng := xorshift(uint64(p.id)*0x2545f4914f6cdd1d + 7)
	mask := uint64(len(p.keys) - 1) // 1 key or a power of two, unless p.cycle
	// Producers start their cycle at different keys.
	next := p.id * len(p.keys) / max(1, c.Producers)
	bg := context.Background()
	for sent := int64(0); c.PMessages == 0 || sent < c.PMessages; sent++ {
		if ctx.Err() != nil {
			break
		}
		if lim != nil && !lim.wait(ctx) {
			break
		}
		if c.Confirm > 0 {
			if err := p.awaitWindow(ctx, c.Confirm); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
		}
		key := p.keys[0]
		if p.cycle {
			key = p.keys[next]
			if next++; next == len(p.keys) {
				next = 0
			}
		} else if mask > 0 {
			key = p.keys[rng.next()&mask]
		}
		now := time.Now().UnixNano()
		if len(body) >= 8 {
			binary.LittleEndian.PutUint64(body, uint64(now))
		}
		if err := p.ch.PublishWithContext(bg, p.exchange, key, false, false, msg); err != nil {
			return fmt.Errorf("producer %d: publish: %w", p.id, p.closeReason(err))
		}
		p.inflight++
		p.stats.published.Add(1)
		p.stats.lastPub.Store(now)
		select {
		case b := <-p.blocked:
			if b.Active {
				logf("producer %d: connection blocked by the broker: %s", p.id, b.Reason)
			} else {
				logf("producer %d: connection unblocked", p.id)
			}
		default:
		}
	}
	if c.Confirm == 0 {
		return nil
	}
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
	}
	if err := p.awaitWindow(wctx, 1); err != nil && wctx.Err() == nil {
		return err
	}
	return nil
}

// awaitWindow takes the confirms that have arrived and waits until fewer than window
// messages are unconfirmed.
func (p *producer) awaitWindow(ctx context.Context, window int) error {
	for {
		select {
		case cf, ok := <-p.confirms:
			if !ok {
				return fmt.Errorf("producer %d: %w", p.id, p.closeReason(amqp.ErrClosed))
			}
			p.onConfirm(cf)
			continue
		default:
		}
		if p.inflight < window {
			return nil
		}
		select {
		case cf, ok := <-p.confirms:
			if !ok {
				return fmt.Errorf("producer %d: %w", p.id, p.closeReason(amqp.ErrClosed))
			}
			p.onConfirm(cf)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeReason prefers the broker's channel.close or connection.close over the library's
// generic error.
func (p *producer) closeReason(err error) error {
	select {
	case e, ok := <-p.closed:
		if ok && e != nil {
			return e
		}
	case <-time.After(100 * time.Millisecond):
	}
	return err
}

// consumer consumes from one queue on its own connection.
type consumer struct {
	id         int
	c          *config
	conn       *amqp.Connection
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     chan *amqp.Error
	stats      *counters

	mu       sync.Mutex // guards the histograms against the reporter
	total    histogram
	interval histogram
}

func newConsumer(c *config, id int, stats *counters) (*consumer, error) {
	w := &consumer{id: id, c: c, stats: stats}
	conn, err := dial(c, fmt.Sprintf("consumer %d", id))
	if err != nil {
		return nil, err
	}
	w.conn = conn
	if w.ch, err = conn.Channel(); err != nil {
		conn.Close()
		return nil, err
	}
	w.closed = w.ch.NotifyClose(make(chan *amqp.Error, 1))
	if c.Prefetch > 0 {
		if err := w.ch.Qos(c.Prefetch, 0, false); err != nil {
			conn.Close()
			return nil, fmt.Errorf("consumer %d: basic.qos: %w", id, err)
		}
	}
	q := c.queueName(id % c.Queues)
	w.deliveries, err = w.ch.Consume(q, fmt.Sprintf("warren-perf-%d", id), c.AutoAck, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("consumer %d: consume from %s: %w", id, q, err)
	}
	return w, nil
}

// run consumes until ctx ends, --cmessages is reached or, with --idle-exit, nothing came
// for that long. With --multi-ack N it acks every N deliveries with multiple=true, and
// also acks a partial batch when deliveries pause, so nothing waits unacked.
func (w *consumer) run(ctx context.Context) error {
	c := w.c
	var count, pending int64
	var lastTag uint64
	lastSeen := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	flush := func() error {
		if pending == 0 {
			return nil
		}
		pending = 0
		if err := w.ch.Ack(lastTag, true); err != nil {
			return fmt.Errorf("consumer %d: ack: %w", w.id, err)
		}
		return nil
	}
	for {
		select {
		case d, ok := <-w.deliveries:
			if !ok {
				select {
				case e := <-w.closed:
					if e != nil {
						return fmt.Errorf("consumer %d: channel closed: %w", w.id, e)
					}
				case <-time.After(100 * time.Millisecond):
				}
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("consumer %d: the broker cancelled the consumer or closed the channel", w.id)
			}
			now := time.Now()
			lastSeen = now
			if len(d.Body) >= 8 {
				lat := now.UnixNano() - int64(binary.LittleEndian.Uint64(d.Body))
				w.mu.Lock()
				w.total.record(lat)
				w.interval.record(lat)
				w.mu.Unlock()
			}
			count++
			w.stats.consumed.Add(1)
			w.stats.lastCons.Store(now.UnixNano())
			if !c.AutoAck {
				if c.MultiAck == 0 {
					if err := w.ch.Ack(d.DeliveryTag, false); err != nil {
						return fmt.Errorf("consumer %d: ack: %w", w.id, err)
					}
				} else {
					pending++
					lastTag = d.DeliveryTag
					if pending >= int64(c.MultiAck) {
						if err := flush(); err != nil {
							return err
						}
					}
				}
			}
			if c.CMessages > 0 && count >= c.CMessages {
				return flush()
			}
		case <-tick.C:
			idle := time.Since(lastSeen)
			if pending > 0 && idle >= 50*time.Millisecond {
				if err := flush(); err != nil {
					return err
				}
			}
			if c.IdleExit > 0 && count > 0 && idle >= c.IdleExit {
				return nil
			}
		case <-ctx.Done():
			return flush()
		}
	}
}

// takeInterval moves the latencies recorded since the last call into into.
func (w *consumer) takeInterval(into *histogram) {
	w.mu.Lock()
	into.merge(&w.interval)
	w.interval.reset()
	w.mu.Unlock()
}
