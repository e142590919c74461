package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// dialTimeout bounds opening a stream to a node; after a failure, requests to that node
// fail at once with the same error for redialAfter instead of each waiting for a dial.
const (
	dialTimeout = 10 * time.Second
	redialAfter = time.Second
)

// dialFailure is the last failed dial to a node.
type dialFailure struct {
	at  time.Time
	err error
}

// Client is B's side: it forwards to the nodes that run queues, over one stream per node,
// opened on first use and again after one broke.
type Client struct {
	d    Dialer
	log  zerolog.Logger
	opts Options

	mu      sync.Mutex
	closed  bool
	conns   map[string]*clientConn
	dialing map[string]*sync.Mutex
	failed  map[string]dialFailure
	redial  time.Duration // redialAfter; tests lengthen it
	wg      sync.WaitGroup
}

// NewClient forwards over streams d opens (the node's raftmux layer for Group).
func NewClient(d Dialer, log zerolog.Logger, opts Options) *Client {
	return &Client{d: d, opts: opts, log: log.With().Str("component", "forward client").Logger(),
		conns: map[string]*clientConn{}, dialing: map[string]*sync.Mutex{}, failed: map[string]dialFailure{},
		redial: redialAfter}
}

// Close breaks every stream (failing what is in flight) and waits for their goroutines.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	conns := make([]*clientConn, 0, len(c.conns))
	for _, cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	for _, cc := range conns {
		cc.w.close(ErrClosed)
	}
	c.wg.Wait()
}

// conn returns the stream to the node at addr, opening it if there is none.
func (c *Client) conn(addr string) (*clientConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if cc := c.conns[addr]; cc != nil {
		c.mu.Unlock()
		return cc, nil
	}
	dl := c.dialing[addr]
	if dl == nil {
		dl = &sync.Mutex{}
		c.dialing[addr] = dl
	}
	c.mu.Unlock()
	dl.Lock()
	defer dl.Unlock()
	c.mu.Lock()
	if cc := c.conns[addr]; cc != nil {
		c.mu.Unlock()
		return cc, nil
	}
	if f, ok := c.failed[addr]; ok && time.Since(f.at) < c.redial {
		c.mu.Unlock()
		return nil, f.err
	}
	c.mu.Unlock()
	st, err := c.d.Dial(raft.ServerAddress(addr), dialTimeout)
	if err != nil {
		err = fmt.Errorf("%w (%s): %w", ErrUnreachable, addr, err)
		c.mu.Lock()
		c.failed[addr] = dialFailure{at: time.Now(), err: err}
		c.mu.Unlock()
		c.log.Warn().Err(err).Str("node", addr).Msg("forwarding: cannot reach the queue's node")
		return nil, err
	}
	cc := &clientConn{c: c, addr: addr, w: newWire(st), pending: map[uint64]waiter{}, subs: map[uint64]*Subscription{}}
	c.mu.Lock()
	delete(c.failed, addr)
	if c.closed {
		c.mu.Unlock()
		_ = st.Close()
		return nil, ErrClosed
	}
	c.conns[addr] = cc
	c.wg.Add(3)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		cc.w.watch(c.opts.heartbeat(), cc.fail)
	}()
	go func() {
		defer c.wg.Done()
		cc.w.run(func(err error) { cc.fail(err) })
	}()
	go func() {
		defer c.wg.Done()
		cc.readLoop()
	}()
	return cc, nil
}

// waiter is a request waiting for its answer: a publish's done, or a reply channel.
type waiter struct {
	done  func(error)
	reply chan reply
}

type reply struct {
	f   frame
	err error
}

// clientConn is the stream to one node.
type clientConn struct {
	c    *Client
	addr string
	w    *wire

	mu      sync.Mutex
	dead    error
	nextID  uint64
	pending map[uint64]waiter
	subs    map[uint64]*Subscription
}

// register gives a request its id; w (if any) gets the answer.
func (cc *clientConn) register(w *waiter) (uint64, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.dead != nil {
		return 0, cc.dead
	}
	cc.nextID++
	if w != nil {
		cc.pending[cc.nextID] = *w
	}
	return cc.nextID, nil
}

func (cc *clientConn) unregister(id uint64) {
	cc.mu.Lock()
	delete(cc.pending, id)
	cc.mu.Unlock()
}

func (cc *clientConn) take(id uint64) (waiter, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	w, ok := cc.pending[id]
	delete(cc.pending, id)
	return w, ok
}

// fail ends the stream: everything in flight fails with err, every subscription ends.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.dead != nil {
		cc.mu.Unlock()
		return
	}
	if !errors.Is(err, ErrClosed) {
		err = broken(cc.addr, err)
	}
	cc.dead = err
	pending, subs := cc.pending, cc.subs
	cc.pending, cc.subs = map[uint64]waiter{}, map[uint64]*Subscription{}
	cc.mu.Unlock()
	cc.c.mu.Lock()
	if cc.c.conns[cc.addr] == cc {
		delete(cc.c.conns, cc.addr)
	}
	cc.c.mu.Unlock()
	cc.w.close(err)
	if len(pending) > 0 || len(subs) > 0 {
		cc.c.log.Warn().Err(err).Str("node", cc.addr).Int("in_flight", len(pending)).
			Int("subscriptions", len(subs)).Msg("forwarding stream ended")
	}
	// In the order they were sent (ids increase): a caller that sends them again keeps it.
	for _, id := range slices.Sorted(maps.Keys(pending)) {
		if w := pending[id]; w.done != nil {
			w.done(err)
		} else {
			w.reply <- reply{err: err}
		}
	}
	for _, s := range subs {
		s.end(err)
	}
}

func (cc *clientConn) readLoop() {
	r := bufio.NewReaderSize(cc.w.conn, 64<<10)
	var hdr [4]byte
	for {
		f, err := readFrame(r, &hdr)
		if err != nil {
			if werr := cc.w.closed(); errors.Is(werr, ErrClosed) {
				err = werr // Client.Close, not a broken stream
			} else if errors.Is(err, errBadFrame) {
				cc.c.log.Error().Err(err).Str("node", cc.addr).Msg("forwarding stream: malformed frame, closing it")
			}
			cc.fail(err)
			return
		}
		cc.w.recv.Add(1)
		cc.w.busy.Store(true)
		err = cc.dispatch(&f)
		cc.w.busy.Store(false)
		if err != nil {
			cc.c.log.Error().Err(err).Str("node", cc.addr).Msg("forwarding stream: bad answer")
			cc.fail(err)
			return
		}
	}
}

func (cc *clientConn) dispatch(f *frame) error {
	switch f.typ {
	case tPing:
	case tPublishOk:
		w, ok := cc.take(f.id)
		if !ok || w.done == nil {
			return fmt.Errorf("%w: answer to publish %d, which is not in flight", errBadFrame, f.id)
		}
		w.done(f.res.err())
	case tGetOk, tPurgeOk, tStatsOk, tNodeOk:
		w, ok := cc.take(f.id)
		if !ok {
			// The caller gave up waiting (its context ended). A message got for it goes back.
			if f.typ == tGetOk && f.flags&fHas != 0 && f.id2 != 0 {
				return cc.w.send(&frame{typ: tSettle, id2: f.id2, flags: byte(Requeue)})
			}
			return nil
		}
		if w.reply == nil {
			return fmt.Errorf("%w: answer of type %d to publish %d", errBadFrame, f.typ, f.id)
		}
		w.reply <- reply{f: *f}
	case tConsumeOk, tDeliver, tCancelled:
		cc.mu.Lock()
		s := cc.subs[f.id]
		if s != nil && f.typ == tCancelled {
			delete(cc.subs, f.id)
		}
		cc.mu.Unlock()
		if s == nil {
			return nil // closed by B meanwhile
		}
		switch f.typ {
		case tConsumeOk:
			s.start(f.res.err())
		case tDeliver:
			s.h.Deliver(&Delivery{ID: f.id2, Redelivered: f.flags&fRedelivered != 0, DeliveryCount: f.n1,
				Exchange: f.vhost, RoutingKey: f.queue, Properties: f.props, Body: f.body})
		default:
			s.end(f.res.err())
		}
	default:
		return fmt.Errorf("%w: type %d is not an answer", errBadFrame, f.typ)
	}
	return nil
}

// call sends a request and waits for its answer.
func (cc *clientConn) call(ctx context.Context, f *frame) (*frame, error) {
	ch := make(chan reply, 1)
	id, err := cc.register(&waiter{reply: ch})
	if err != nil {
		return nil, err
	}
	f.id = id
	if err := cc.w.send(f); err != nil {
		cc.unregister(id)
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if err := r.f.res.err(); err != nil {
			return nil, err
		}
		return &r.f, nil
	case <-ctx.Done():
		cc.unregister(id)
		return nil, fmt.Errorf("forward to %s: %w", cc.addr, ctx.Err())
	}
}

// Publish forwards m to queue on the node at addr. done (which may be nil without confirm)
// runs once: with confirm, when the node answers (nil: stored, durable where the queue
// is; a 404 *amqpwire.ChannelError: no such queue; another error: nack); without, once the
// message is on its way. A broken stream fails it with ErrStreamBroken. Publish waits
// while the stream has too much unwritten.
func (c *Client) Publish(addr, vhost, queue string, m *Message, confirm bool, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	cc, err := c.conn(addr)
	if err != nil {
		done(err)
		return
	}
	f := frame{typ: tPublish, vhost: vhost, queue: queue, exchange: m.Exchange, key: m.RoutingKey,
		props: m.Properties, body: m.Body}
	if m.Persistent {
		f.flags |= fPersistent
	}
	var w *waiter
	if confirm {
		f.flags |= fConfirm
		w = &waiter{done: done}
	}
	if f.id, err = cc.register(w); err != nil {
		done(err)
		return
	}
	if err := cc.w.sendWhenRoom(&f); err != nil {
		if !confirm {
			done(err)
		} else if w, ok := cc.take(f.id); ok {
			w.done(err)
		}
		return
	}
	if !confirm {
		done(nil)
	}
}

// Get takes one message from queue on the node at addr: nil when it is empty, with the
// count of messages left. Unless noAck, settle it with SettleGot.
func (c *Client) Get(ctx context.Context, addr, vhost, queue string, noAck bool) (*Delivery, uint32, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, 0, err
	}
	f := frame{typ: tGet, vhost: vhost, queue: queue}
	if noAck {
		f.flags = fNoAck
	}
	a, err := cc.call(ctx, &f)
	if err != nil {
		return nil, 0, err
	}
	if a.flags&fHas == 0 {
		return nil, a.n1, nil
	}
	return &Delivery{ID: a.id2, Redelivered: a.flags&fRedelivered != 0, DeliveryCount: a.n2,
		Exchange: a.vhost, RoutingKey: a.queue, Properties: a.props, Body: a.body, via: cc}, a.n1, nil
}

// SettleGot settles a message Get returned (with noAck false) on the stream it came by;
// after that stream broke it fails, the message having been requeued by its node.
func (c *Client) SettleGot(d *Delivery, op SettleOp) error {
	if d.via == nil {
		return errors.New("forward: settling a delivery that did not come from Get")
	}
	return d.via.w.send(&frame{typ: tSettle, id2: d.ID, flags: byte(op)})
}

// Purge empties queue on the node at addr and returns how many messages it removed.
func (c *Client) Purge(ctx context.Context, addr, vhost, queue string) (uint32, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return 0, err
	}
	a, err := cc.call(ctx, &frame{typ: tPurge, vhost: vhost, queue: queue})
	if err != nil {
		return 0, err
	}
	return a.n1, nil
}

// Stats are queue's counts on the node at addr (a passive queue.declare).
func (c *Client) Stats(ctx context.Context, addr, vhost, queue string) (Stats, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return Stats{}, err
	}
	a, err := cc.call(ctx, &frame{typ: tStats, vhost: vhost, queue: queue})
	if err != nil {
		return Stats{}, err
	}
	return Stats{Messages: a.n1, Consumers: a.n2, Unacked: a.n3}, nil
}

// Node asks the node at addr for its report of itself (Local.Node): what the management API
// lists for it in /api/nodes.
func (c *Client) Node(ctx context.Context, addr string) ([]byte, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	a, err := cc.call(ctx, &frame{typ: tNode})
	if err != nil {
		return nil, err
	}
	return a.body, nil
}
