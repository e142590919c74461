package forward

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"sync"

	"github.com/rs/zerolog"
)

// Server is A's side: it serves the streams other nodes open (Accept on the node's raftmux
// layer for Group) on local's queues.
type Server struct {
	ln    net.Listener
	local Local
	log   zerolog.Logger
	opts  Options

	mu     sync.Mutex
	closed bool
	conns  map[*serverConn]struct{}
	wg     sync.WaitGroup
}

// Serve accepts streams on ln until Close.
func Serve(ln net.Listener, local Local, log zerolog.Logger, opts Options) *Server {
	s := &Server{ln: ln, local: local, opts: opts, log: log.With().Str("component", "forward server").Logger(),
		conns: map[*serverConn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// Close stops accepting, breaks every stream (requeueing what their consumers had not
// acknowledged) and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, sc := range conns {
		sc.w.close(ErrClosed)
	}
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				s.log.Error().Err(err).Msg("forwarding listener stopped accepting")
			}
			return
		}
		sc := &serverConn{s: s, w: newWire(c), peer: c.RemoteAddr().String(),
			subs: map[uint64]*serverSub{}, got: map[uint64]gotEntry{}}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[sc] = struct{}{}
		s.wg.Add(3)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sc.w.watch(s.opts.heartbeat(), func(err error) {
				s.log.Warn().Err(err).Str("peer", sc.peer).Msg("forwarding stream: the other node is silent, closing it")
				sc.w.close(broken(sc.peer, err))
			})
		}()
		go func() {
			defer s.wg.Done()
			sc.w.run(func(err error) { sc.w.close(err) })
		}()
		go func() {
			defer s.wg.Done()
			sc.serve()
			s.mu.Lock()
			delete(s.conns, sc)
			s.mu.Unlock()
		}()
	}
}

// gotEntry is a message a get took and B has not settled.
type gotEntry struct {
	ref any
	st  Settler
}

// serverConn is one stream from another node. Its reader goroutine (serve) calls Local and
// cleans up when the stream ends. Lock order: queue lock → serverSub.mu → serverConn.mu →
// wire.mu; the writer kicks consumers waiting for it to drain with no lock held.
type serverConn struct {
	s    *Server
	w    *wire
	peer string

	mu      sync.Mutex
	subs    map[uint64]*serverSub
	got     map[uint64]gotEntry
	nextGot uint64
}

func (sc *serverConn) serve() {
	r := bufio.NewReaderSize(sc.w.conn, 64<<10)
	var hdr [4]byte
	var err error
	for {
		var f frame
		if f, err = readFrame(r, &hdr); err != nil {
			if errors.Is(err, errBadFrame) {
				sc.s.log.Error().Err(err).Str("peer", sc.peer).Msg("forwarding stream: malformed frame, closing it")
			}
			break
		}
		sc.w.recv.Add(1)
		sc.w.busy.Store(true)
		err = sc.handle(&f)
		sc.w.busy.Store(false)
		if err != nil {
			sc.s.log.Error().Err(err).Str("peer", sc.peer).Msg("forwarding stream: bad request, closing it")
			break
		}
	}
	sc.w.close(broken(sc.peer, err))
	sc.cleanup()
}

// cleanup runs when the stream has ended: every consumer goes, every unsettled delivery
// and got message is requeued, as when a channel closes.
func (sc *serverConn) cleanup() {
	sc.mu.Lock()
	subs, got := sc.subs, sc.got
	sc.subs, sc.got = map[uint64]*serverSub{}, map[uint64]gotEntry{}
	sc.mu.Unlock()
	for _, sub := range subs {
		sub.close()
	}
	for _, g := range got {
		g.st.Settle([]any{g.ref}, Requeue)
	}
	if len(subs) > 0 || len(got) > 0 {
		sc.s.log.Info().Str("peer", sc.peer).Int("consumers", len(subs)).Int("got", len(got)).
			Msg("forwarding stream ended: its consumers removed, unacknowledged messages requeued")
	}
}

// noAnswer is the done of a publish without confirm: its settle work still runs.
func noAnswer(_ error, settle func()) {
	if settle != nil {
		settle()
	}
}

func (sc *serverConn) answer(f *frame) {
	_ = sc.w.send(f) // fails only once the stream is closed, when no answer matters
}

func (sc *serverConn) handle(f *frame) error {
	l := sc.s.local
	switch f.typ {
	case tPing:
	case tPublish:
		m := &Message{Exchange: f.exchange, RoutingKey: f.key, Properties: f.props, Body: f.body,
			Persistent: f.flags&fPersistent != 0}
		if f.flags&fConfirm == 0 {
			l.Publish(f.vhost, f.queue, m, false, noAnswer)
			return nil
		}
		id := f.id
		l.Publish(f.vhost, f.queue, m, true, func(err error, settle func()) {
			a := frame{typ: tPublishOk, id: id, res: toResult(err)}
			if settle == nil {
				sc.answer(&a)
			} else {
				sc.w.answerAfter(&a, settle)
			}
		})
	case tConsume:
		sc.consume(f)
	case tSettle:
		sc.settle(f)
	case tCredit, tCancel, tClose:
		sc.mu.Lock()
		sub := sc.subs[f.id]
		if f.typ == tClose {
			delete(sc.subs, f.id)
		}
		sc.mu.Unlock()
		if sub == nil {
			return nil // ended by A meanwhile
		}
		switch f.typ {
		case tCredit:
			sub.credit(f.n1)
		case tCancel:
			sub.cancel()
			sc.answer(&frame{typ: tCancelled, id: f.id})
		default:
			sub.close()
		}
	case tGet:
		sc.get(f)
	case tPurge:
		n, err := l.Purge(f.vhost, f.queue)
		sc.answer(&frame{typ: tPurgeOk, id: f.id, res: toResult(err), n1: n})
	case tStats:
		st, err := l.Stats(f.vhost, f.queue)
		sc.answer(&frame{typ: tStatsOk, id: f.id, res: toResult(err), n1: st.Messages, n2: st.Consumers, n3: st.Unacked})
	case tNode:
		report, err := l.Node()
		sc.answer(&frame{typ: tNodeOk, id: f.id, res: toResult(err), body: report})
	default:
		return fmt.Errorf("%w: type %d is not a request", errBadFrame, f.typ)
	}
	return nil
}

func (sc *serverConn) get(f *frame) {
	noAck := f.flags&fNoAck != 0
	d, st, count, err := sc.s.local.Get(f.vhost, f.queue, noAck)
	a := frame{typ: tGetOk, id: f.id, res: toResult(err), n1: count}
	if err == nil && d != nil {
		a.flags = fHas
		if d.Redelivered {
			a.flags |= fRedelivered
		}
		a.n2, a.vhost, a.queue, a.props, a.body = d.DeliveryCount, d.Exchange, d.RoutingKey, d.Properties, d.Body
		if !noAck {
			sc.mu.Lock()
			sc.nextGot++
			a.id2 = sc.nextGot
			sc.got[a.id2] = gotEntry{ref: d.Ref, st: st}
			sc.mu.Unlock()
		}
	}
	sc.answer(&a)
}

func (sc *serverConn) consume(f *frame) {
	opts := ConsumeOptions{Tag: f.exchange, Prefetch: f.n1, Credit: f.n2, NoAck: f.flags&fNoAck != 0,
		Exclusive: f.flags&fExclusive != 0, Arguments: f.args}
	sub := &serverSub{sc: sc, id: f.id, opts: opts, creditLeft: opts.Credit}
	sc.mu.Lock()
	if sc.subs[f.id] != nil {
		sc.mu.Unlock()
		sc.answer(&frame{typ: tConsumeOk, id: f.id, res: toResult(errors.New("subscription id in use"))})
		return
	}
	sc.subs[f.id] = sub
	sc.mu.Unlock()
	lc, err := sc.s.local.Consume(f.vhost, f.queue, opts, sub)
	if err != nil {
		sc.mu.Lock()
		delete(sc.subs, f.id)
		sc.mu.Unlock()
		sc.answer(&frame{typ: tConsumeOk, id: f.id, res: toResult(err)})
		return
	}
	sub.mu.Lock()
	sub.lc = lc
	sub.mu.Unlock()
	sub.kick() // in case a kick came while Consume ran
	// Deliveries made during Consume are already in the buffer, before this answer; B
	// accepts them for the subscription it is waiting on.
	sc.answer(&frame{typ: tConsumeOk, id: f.id})
}

func (sc *serverConn) settle(f *frame) {
	op, multiple := SettleOp(f.flags&3), f.flags&fMultiple != 0
	if f.id == 0 {
		sc.mu.Lock()
		g, ok := sc.got[f.id2]
		delete(sc.got, f.id2)
		sc.mu.Unlock()
		if ok {
			g.st.Settle([]any{g.ref}, op)
		} else {
			sc.s.log.Debug().Str("peer", sc.peer).Uint64("id", f.id2).Msg("forwarded settle of an unknown got message")
		}
		return
	}
	sc.mu.Lock()
	sub := sc.subs[f.id]
	sc.mu.Unlock()
	if sub != nil {
		sub.settle(f.id2, multiple, op)
	}
}

// unacked is a delivery B has not settled.
type unacked struct {
	id  uint64
	ref any
}

// serverSub is a forwarded consumer: the Sink Local delivers to.
type serverSub struct {
	sc   *serverConn
	id   uint64
	opts ConsumeOptions

	mu         sync.Mutex
	lc         LocalConsumer // nil until Local.Consume returned
	nextID     uint64
	unacked    []unacked // by id
	creditLeft uint32
	starved    bool // refused a delivery: kick when that changes
	stopped    bool // no more deliveries (cancelled by either side, or closed)
	gone       bool // ended by A: Local disposed of the entries
}

// Deliver implements Sink.
func (s *serverSub) Deliver(d *Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if (!s.opts.NoAck && s.opts.Prefetch > 0 && uint32(len(s.unacked)) >= s.opts.Prefetch) ||
		(s.opts.Credit > 0 && s.creditLeft == 0) {
		s.starved = true
		return false
	}
	if s.sc.w.waitDrain(s) {
		s.starved = true
		return false
	}
	s.nextID++
	f := frame{typ: tDeliver, id: s.id, id2: s.nextID, n1: d.DeliveryCount, vhost: d.Exchange,
		queue: d.RoutingKey, props: d.Properties, body: d.Body}
	if d.Redelivered {
		f.flags = fRedelivered
	}
	if err := s.sc.w.send(&f); err != nil {
		s.nextID--
		return false // the stream is closing; cleanup removes the consumer
	}
	if !s.opts.NoAck {
		s.unacked = append(s.unacked, unacked{id: s.nextID, ref: d.Ref})
	}
	if s.opts.Credit > 0 {
		s.creditLeft--
	}
	return true
}

// Cancelled implements Sink.
func (s *serverSub) Cancelled(err error) {
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	s.stopped, s.gone, s.unacked = true, true, nil
	s.mu.Unlock()
	s.sc.mu.Lock()
	if s.sc.subs[s.id] == s {
		delete(s.sc.subs, s.id)
	}
	s.sc.mu.Unlock()
	if err == nil {
		err = errors.New("consumer cancelled by the queue's node")
	}
	s.sc.s.log.Debug().Err(err).Str("peer", s.sc.peer).Str("tag", s.opts.Tag).Msg("forwarded consumer cancelled")
	s.sc.answer(&frame{typ: tCancelled, id: s.id, res: toResult(err)})
}

// kick clears starved and tells Local the sink can take more (once Consume has returned:
// until then starved stays, for consume's own kick).
func (s *serverSub) kick() {
	s.mu.Lock()
	lc, was := s.lc, s.starved && !s.stopped
	if lc != nil {
		s.starved = false
	}
	s.mu.Unlock()
	if was && lc != nil {
		lc.Kick()
	}
}

func (s *serverSub) credit(n uint32) {
	s.mu.Lock()
	s.creditLeft = uint32(min(uint64(s.creditLeft)+uint64(n), math.MaxUint32))
	s.mu.Unlock()
	s.kick()
}

// settle takes the deliveries up to id (or id alone) off the unacked list and settles
// them.
func (s *serverSub) settle(id uint64, multiple bool, op SettleOp) {
	s.mu.Lock()
	i := sort.Search(len(s.unacked), func(i int) bool { return s.unacked[i].id >= id })
	var refs []any
	switch {
	case multiple:
		if i < len(s.unacked) && s.unacked[i].id == id {
			i++
		}
		refs = make([]any, i)
		for j := range i {
			refs[j] = s.unacked[j].ref
		}
		s.unacked = append(s.unacked[:0], s.unacked[i:]...)
	case i < len(s.unacked) && s.unacked[i].id == id:
		refs = []any{s.unacked[i].ref}
		s.unacked = append(s.unacked[:i], s.unacked[i+1:]...)
	}
	lc := s.lc
	s.mu.Unlock()
	if len(refs) == 0 {
		s.sc.s.log.Debug().Str("peer", s.sc.peer).Uint64("id", id).Msg("forwarded settle of an unknown delivery")
		return
	}
	lc.Settle(refs, op)
	s.kick()
}

// cancel stops the deliveries (B's basic.cancel); unacked ones stay.
func (s *serverSub) cancel() {
	s.mu.Lock()
	lc, was := s.lc, s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !was && lc != nil {
		lc.Cancel()
	}
}

// close removes the consumer and requeues its unacked deliveries (B closed its channel, or
// the stream ended).
func (s *serverSub) close() {
	s.cancel()
	s.mu.Lock()
	lc, gone, refs := s.lc, s.gone, s.unacked
	s.unacked, s.gone = nil, true
	s.mu.Unlock()
	if gone || lc == nil || len(refs) == 0 {
		return
	}
	all := make([]any, len(refs))
	for i, u := range refs {
		all[i] = u.ref
	}
	lc.Settle(all, Requeue)
}
