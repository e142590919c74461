package forward

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/raftmux"
)

// fakeLocal is a node's queues in memory, delivering under each queue's lock as the real
// queue core does.
type fakeLocal struct {
	mu     sync.Mutex
	queues map[string]*fakeQueue
	// hold, when set, keeps publish confirmations for the test to answer.
	hold    bool
	held    []heldPublish
	changed chan struct{} // a signal after every change a test may wait for
}

type heldPublish struct {
	queue string
	m     *Message
	done  func(error, func())
}

type fakeMsg struct {
	seq         int
	body        string
	redelivered bool
	count       uint32
}

type fakeQueue struct {
	l         *fakeLocal
	name      string
	mu        sync.Mutex
	seq       int
	ready     []*fakeMsg
	consumers []*fakeConsumer
	exclusive bool
	acked     []string
	discarded []string
	requeued  int
	unacked   int // delivered (to a consumer or a get) with acks, not settled yet
}

type fakeConsumer struct {
	q    *fakeQueue
	sink Sink
	opts ConsumeOptions
}

func newFakeLocal(queues ...string) *fakeLocal {
	l := &fakeLocal{queues: map[string]*fakeQueue{}, changed: make(chan struct{}, 1)}
	for _, n := range queues {
		l.queues[n] = &fakeQueue{l: l, name: n}
	}
	return l
}

func (l *fakeLocal) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitFor waits (30 s at most) until cond holds, checking after each change.
func (l *fakeLocal) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (l *fakeLocal) queue(vhost, name string) (*fakeQueue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.queues[name]; q != nil && vhost == "/" {
		return q, nil
	}
	return nil, NotFound(vhost, name, amqpwire.ClassQueue, amqpwire.MethodQueueDeclare)
}

// put appends messages with the given bodies.
func (q *fakeQueue) put(bodies ...string) {
	q.mu.Lock()
	for _, b := range bodies {
		q.seq++
		q.ready = append(q.ready, &fakeMsg{seq: q.seq, body: b})
	}
	q.dispatchLocked()
	q.mu.Unlock()
	q.l.signal()
}

func (q *fakeQueue) dispatchLocked() {
	for len(q.ready) > 0 {
		m := q.ready[0]
		took := false
		for _, c := range q.consumers {
			d := &Delivery{Redelivered: m.redelivered, DeliveryCount: m.count, Exchange: "x", RoutingKey: q.name,
				Properties: []byte{0, 0}, Body: []byte(m.body), Ref: m}
			if c.sink.Deliver(d) {
				took = true
				if c.opts.NoAck {
					q.acked = append(q.acked, m.body)
				} else {
					q.unacked++
				}
				break
			}
		}
		if !took {
			return
		}
		q.ready = q.ready[1:]
	}
}

// snapshot returns the queue's ready bodies, consumer count and settled bodies.
func (q *fakeQueue) snapshot() (ready []string, consumers int, acked, discarded []string, requeued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.ready {
		ready = append(ready, m.body)
	}
	return ready, len(q.consumers), slices.Clone(q.acked), slices.Clone(q.discarded), q.requeued
}

func (l *fakeLocal) Publish(vhost, queue string, m *Message, confirm bool, done func(error, func())) {
	q, err := l.queue(vhost, queue)
	if err != nil {
		done(err, nil)
		return
	}
	q.put(string(m.Body))
	l.mu.Lock()
	if l.hold && confirm {
		l.held = append(l.held, heldPublish{queue: queue, m: m, done: done})
		l.mu.Unlock()
		l.signal()
		return
	}
	l.mu.Unlock()
	done(nil, nil)
}

func (l *fakeLocal) Consume(vhost, queue string, opts ConsumeOptions, sink Sink) (LocalConsumer, error) {
	q, err := l.queue(vhost, queue)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.exclusive || (opts.Exclusive && len(q.consumers) > 0) {
		return nil, amqpwire.NewChannelError(amqpwire.CodeAccessRefused, amqpwire.ClassBasic, amqpwire.MethodBasicConsume,
			"queue '%s' in vhost '%s' in exclusive use", queue, vhost)
	}
	q.exclusive = opts.Exclusive
	c := &fakeConsumer{q: q, sink: sink, opts: opts}
	q.consumers = append(q.consumers, c)
	q.dispatchLocked()
	defer l.signal()
	return c, nil
}

func (l *fakeLocal) Get(vhost, queue string, noAck bool) (*Delivery, Settler, uint32, error) {
	q, err := l.queue(vhost, queue)
	if err != nil {
		return nil, nil, 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ready) == 0 {
		return nil, nil, 0, nil
	}
	m := q.ready[0]
	q.ready = q.ready[1:]
	if noAck {
		q.acked = append(q.acked, m.body)
	} else {
		q.unacked++
	}
	return &Delivery{Redelivered: m.redelivered, DeliveryCount: m.count, Exchange: "x", RoutingKey: queue,
		Body: []byte(m.body), Ref: m}, q, uint32(len(q.ready)), nil
}

func (l *fakeLocal) Purge(vhost, queue string) (uint32, error) {
	q, err := l.queue(vhost, queue)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.ready)
	q.ready = nil
	return uint32(n), nil
}

func (l *fakeLocal) Stats(vhost, queue string) (Stats, error) {
	q, err := l.queue(vhost, queue)
	if err != nil {
		return Stats{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Messages: uint32(len(q.ready)), Consumers: uint32(len(q.consumers)), Unacked: uint32(q.unacked)}, nil
}

// Node reports the fake node: its queue count.
func (l *fakeLocal) Node() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Appendf(nil, `{"queues":%d}`, len(l.queues)), nil
}

// deleteQueue removes the queue; its consumers are cancelled with RabbitMQ's 404.
func (l *fakeLocal) deleteQueue(name string) {
	l.mu.Lock()
	q := l.queues[name]
	delete(l.queues, name)
	l.mu.Unlock()
	q.mu.Lock()
	cs := q.consumers
	q.consumers = nil
	q.mu.Unlock()
	for _, c := range cs {
		c.sink.Cancelled(NotFound("/", name, amqpwire.ClassBasic, amqpwire.MethodBasicCancel))
	}
	l.signal()
}

// Settle implements Settler for gets and consumers: requeued messages go back in their
// original order, redelivered.
func (q *fakeQueue) Settle(refs []any, op SettleOp) {
	q.mu.Lock()
	for _, r := range refs {
		m := r.(*fakeMsg)
		q.unacked--
		switch op {
		case Ack:
			q.acked = append(q.acked, m.body)
		case Discard:
			q.discarded = append(q.discarded, m.body)
		case Requeue:
			m.redelivered = true
			m.count++
			q.requeued++
			i, _ := slices.BinarySearchFunc(q.ready, m.seq, func(e *fakeMsg, seq int) int { return e.seq - seq })
			q.ready = slices.Insert(q.ready, i, m)
		}
	}
	q.dispatchLocked()
	q.mu.Unlock()
	q.l.signal()
}

func (c *fakeConsumer) Settle(refs []any, op SettleOp) { c.q.Settle(refs, op) }

func (c *fakeConsumer) Kick() {
	c.q.mu.Lock()
	c.q.dispatchLocked()
	c.q.mu.Unlock()
	c.q.l.signal()
}

func (c *fakeConsumer) Cancel() {
	c.q.mu.Lock()
	c.q.consumers = slices.DeleteFunc(c.q.consumers, func(o *fakeConsumer) bool { return o == c })
	if c.opts.Exclusive {
		c.q.exclusive = false
	}
	c.q.mu.Unlock()
	c.q.l.signal()
}

// recorder is a Handler that keeps what it gets.
type recorder struct {
	mu     sync.Mutex
	got    []*Delivery
	ended  chan error
	signal chan struct{}
}

func newRecorder() *recorder {
	return &recorder{ended: make(chan error, 1), signal: make(chan struct{}, 1)}
}

func (r *recorder) Deliver(d *Delivery) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) Ended(err error) { r.ended <- err }

func (r *recorder) deliveries() []*Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitN waits until n deliveries arrived and returns them.
func (r *recorder) waitN(t *testing.T, n int) []*Delivery {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if got := r.deliveries(); len(got) >= n {
			return got
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("got %d deliveries, want %d", len(r.deliveries()), n)
		}
	}
}

func (r *recorder) waitEnded(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.ended:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the subscription did not end")
		return nil
	}
}

func bodies(ds []*Delivery) string {
	var s []string
	for _, d := range ds {
		s = append(s, string(d.Body))
	}
	return strings.Join(s, ",")
}

// pair is node A (a Server over a Local) and node B (a Client), on two raftmux muxes.
type pair struct {
	a, b   *raftmux.Mux
	server *Server
	client *Client
}

func (p *pair) addr() string { return p.a.Addr() }

func newMux(t testing.TB, node string) *raftmux.Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return raftmux.New(raftmux.Config{Listener: ln, Node: node, Secret: []byte("k"), Logger: zerolog.Nop()})
}

// newPair starts both nodes; at the end of the test it stops them and checks that no
// goroutine is left behind.
func newPair(t testing.TB, local Local) *pair {
	t.Helper()
	base := runtime.NumGoroutine()
	p := &pair{a: newMux(t, "a"), b: newMux(t, "b")}
	la, err := p.a.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := p.b.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	p.server = Serve(la, local, zerolog.Nop(), Options{})
	p.client = NewClient(lb, zerolog.Nop(), Options{})
	t.Cleanup(func() {
		p.client.Close()
		if err := p.server.Close(); err != nil && !errors.Is(err, raftmux.ErrClosed) {
			t.Errorf("server close: %v", err)
		}
		_ = p.b.Close()
		_ = p.a.Close()
		checkGoroutines(t, base)
	})
	return p
}

// checkGoroutines waits for the goroutine count to come back to base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-base, base, buf[:n])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func msg(body string) *Message {
	return &Message{Exchange: "x", RoutingKey: "q", Properties: []byte{0, 0}, Body: []byte(body), Persistent: true}
}

func nums(prefix string, n int) []string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, fmt.Sprintf("%s%d", prefix, i))
	}
	return s
}
