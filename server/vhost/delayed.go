package vhost

import (
	"container/heap"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// A delayed-message exchange (exchange.KindDelayed) holds a message whose x-delay header asks
// for it and routes it when it is due, with the bindings it has then. With a store, every held
// message is written to it (the store's held-message log: a file per second of due time)
// before it counts as held — the publisher's confirm means "stored" — and only a window of
// the next due ones is in memory: the delayer reads the following ones from the store as the
// window drains. Without a store
// (a broker that persists nothing) they are all in memory.
//
// Routing at due time goes through the same path as a publish (Vhost.publishNow), so dead
// queues, alternate exchanges and exchange-to-exchange bindings behave as for any message; a
// message nothing takes then is dropped (a basic.return cannot reach its publisher any more).

// A delayer keeps at most delayWindow held messages and delayWindowBytes of their bodies and
// properties in memory (up to twice that briefly). It reads the next ones from the store when
// the window is half empty, on a goroutine of its own while it goes on routing: at the 1M
// benchmark's 17k messages a second a refill has about 1 s to finish (with 16,384, half a
// second, the p99 was 50–96 ms; with 32,768, 29–37 ms: docs/performance.md).
const (
	delayWindow      = 32768
	delayWindowBytes = 16 << 20
)

// held is one message in a delayer's memory window.
type held struct {
	c     store.DelayedCursor
	delay int64 // the x-delay asked for, for the header rewrite at delivery
	keys  []string
	msg   *queue.Message
}

// size is what a held message counts for in the window's byte budget.
func (h *held) size() int64 { return int64(len(h.msg.Body) + len(h.msg.RawProperties)) }

type heldHeap []*held

func (h heldHeap) Len() int           { return len(h) }
func (h heldHeap) Less(i, j int) bool { return h[i].c.Less(h[j].c) }
func (h heldHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)        { *h = append(*h, x.(*held)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// delayer holds the messages of one delayed-message exchange.
//
// Its memory window is exact: it holds every held message whose cursor (due, seq) is at most
// bound, and when bounded is false, every held message there is. A message stored after
// bound stays on disk until a refill reads it. Messages join the window only once stored, so
// a refill (which reads committed records) never misses one. Only a refill moves the bound up
// and only a trim moves it down, never while a refill reads (a trim waits for its end).
type delayer struct {
	v           *Vhost
	x           *Exchange
	clock       queue.Clock
	st          *store.Store // nil: all in memory
	window      int
	windowBytes int64

	pending atomic.Int64 // held messages, in memory or not
	seq     atomic.Uint64

	mu        sync.Mutex
	heap      heldHeap
	bytes     int64 // size of the messages in heap
	bounded   bool
	bound     store.DelayedCursor
	refilling bool
	during    []*held // stored while a refill read, after the old bound
	timer     queue.Timer
	timerAt   int64
	stopped   bool

	fire    sync.Mutex     // one delivery pass at a time
	scratch Scratch        // the passes' routing memory, under fire
	reads   sync.WaitGroup // the refill in flight, for stop
}

func newDelayer(v *Vhost, x *Exchange) *delayer {
	return &delayer{v: v, x: x, clock: v.clock, st: v.st, window: delayWindow, windowBytes: delayWindowBytes}
}

// Pending is how many messages the exchange holds (0 for other kinds).
func (x *Exchange) Pending() int64 {
	if x.delay == nil {
		return 0
	}
	return x.delay.pending.Load()
}

// hold takes msg for delay ms. With a store the message joins the window once written, and c
// (when not nil) counts the write, so the confirm means "stored"; a write that fails nacks.
func (d *delayer) hold(msg *queue.Message, keys []string, delay int64, c Confirm) (routed, refused bool) {
	// The clock reads whole milliseconds, rounded down: one more makes sure no message is
	// routed before its x-delay has passed.
	h := &held{c: store.DelayedCursor{Due: d.clock.Now() + delay + 1}, delay: delay,
		keys: slices.Clone(keys), msg: msg}
	if d.st == nil {
		h.c.Seq = d.seq.Add(1)
		d.pending.Add(1)
		d.add(h)
		return true, false
	}
	if c != nil && c.Nackable() && d.st.Full() {
		return false, true
	}
	seq, err := d.st.NewDelayedSeq()
	if err != nil {
		d.v.log.Error().Err(err).Str("exchange", d.x.def.Name).Msg("delayed message refused")
		return false, true
	}
	h.c.Seq = seq
	ttl := int64(-1)
	if msg.HasTTL {
		ttl = msg.TTL
	}
	rec := &store.Delayed{Due: h.c.Due, Seq: seq, Keys: h.keys, TTL: ttl,
		Msg: store.Message{Exchange: msg.Exchange, RoutingKey: msg.RoutingKey, Properties: msg.RawProperties,
			Body: msg.Body, Persistent: msg.Persistent, Priority: msg.Properties.Priority}}
	if c != nil {
		c.Add()
	}
	d.pending.Add(1)
	d.st.PutDelayed(d.v.name, d.x.def.Name, rec, func(err error) {
		// On the store's writer goroutine: must not block (d.mu is held only briefly).
		if err != nil {
			d.pending.Add(-1)
			d.v.log.Error().Err(err).Str("exchange", d.x.def.Name).Msg("delayed message not stored; dropped")
		} else {
			d.add(h)
		}
		if c != nil {
			c.Done(err)
		}
	})
	return true, false
}

// add puts a held (and stored) message in the window if it belongs there, and arms the timer.
func (d *delayer) add(h *held) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	switch {
	case !d.bounded || !d.bound.Less(h.c):
		heap.Push(&d.heap, h)
		d.bytes += h.size()
	case d.refilling:
		d.during = append(d.during, h)
		return
	default:
		return // on disk, after the window: a refill reads it
	}
	d.trimLocked()
	d.armLocked()
}

// overLocked says the window holds more than twice its budget.
func (d *delayer) overLocked() bool {
	return len(d.heap) > 2*d.window || d.bytes > 2*d.windowBytes
}

// trimLocked shrinks a window over twice its budget back to its budget, keeping the first
// due; the rest are on disk. Not while a refill reads (it moves the bound), nor without a store.
func (d *delayer) trimLocked() {
	if d.st == nil || d.refilling || !d.overLocked() {
		return
	}
	slices.SortFunc(d.heap, func(a, b *held) int {
		if a.c.Less(b.c) {
			return -1
		}
		if b.c.Less(a.c) {
			return 1
		}
		return 0
	})
	keep, bytes := 0, int64(0)
	for keep < len(d.heap) && keep < d.window && (keep == 0 || bytes+d.heap[keep].size() <= d.windowBytes) {
		bytes += d.heap[keep].size()
		keep++
	}
	clear(d.heap[keep:])
	d.heap, d.bytes = d.heap[:keep], bytes
	d.bounded, d.bound = true, d.heap[len(d.heap)-1].c
	heap.Init(&d.heap) // sorted is a heap already; Init is cheap and says so
}

// armLocked arranges for a pass when the earliest held message is due.
func (d *delayer) armLocked() {
	if d.stopped || len(d.heap) == 0 {
		return
	}
	at := d.heap[0].c.Due
	if d.timer != nil {
		if d.timerAt <= at {
			return
		}
		if !d.timer.Stop() {
			return // it is running: its pass re-arms
		}
	}
	d.timer, d.timerAt = d.clock.At(at, d.pass), at
}

// kick runs a pass now (recovery: the window is empty and the store holds messages).
func (d *delayer) kick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer, d.timerAt = d.clock.At(d.clock.Now(), d.pass), d.clock.Now()
}

// passBatch bounds the messages one pass routes before it looks at the window again.
const passBatch = 1024

// pass routes every message that is due, starting a refill from the store when the window is
// half empty, then arms the timer for the next one.
func (d *delayer) pass() {
	d.fire.Lock()
	defer d.fire.Unlock()
	d.mu.Lock()
	d.timer, d.timerAt = nil, 0
	d.mu.Unlock()
	var due []*held
	for {
		now := d.clock.Now()
		d.mu.Lock()
		if d.stopped {
			d.mu.Unlock()
			return
		}
		due = due[:0]
		for len(d.heap) > 0 && d.heap[0].c.Due <= now && len(due) < passBatch {
			h := heap.Pop(&d.heap).(*held)
			d.bytes -= h.size()
			due = append(due, h)
		}
		d.refillLocked()
		d.mu.Unlock()
		for _, h := range due {
			d.deliver(h)
		}
		if len(due) < passBatch {
			break
		}
	}
	d.mu.Lock()
	d.armLocked()
	d.mu.Unlock()
}

// refillLocked starts a refill when messages wait on disk and the window is under half of
// both budgets, so the read has room for at least half a window.
func (d *delayer) refillLocked() {
	if !d.bounded || d.refilling || d.stopped || len(d.heap) >= d.window/2 || d.bytes >= d.windowBytes/2 {
		return
	}
	d.refilling = true
	d.reads.Add(1)
	go d.refill(d.bound, d.window-len(d.heap), int(max(d.windowBytes-d.bytes, 1)))
}

// refill reads the stored messages after the window's bound into it, then arms the timer (the
// window may have run dry meanwhile).
func (d *delayer) refill(after store.DelayedCursor, count, bytes int) {
	defer d.reads.Done()
	recs, err := d.st.ReadDelayed(d.v.name, d.x.def.Name, &after, count, bytes)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refilling = false
	during := d.during
	d.during = nil
	if d.stopped {
		return
	}
	if err != nil {
		// The bound stays; a pass in a second tries again, whatever the window holds.
		d.v.log.Error().Err(err).Str("exchange", d.x.def.Name).Msg("reading delayed messages failed; retrying in 1s")
		if d.timer != nil {
			d.timer.Stop()
		}
		at := d.clock.Now() + 1000
		if len(d.heap) > 0 {
			at = min(at, d.heap[0].c.Due)
		}
		d.timer, d.timerAt = d.clock.At(at, d.pass), at
		return
	}
	read := make(map[store.DelayedCursor]struct{}, len(recs))
	for i := range recs {
		h := heldFrom(&recs[i])
		read[h.c] = struct{}{}
		heap.Push(&d.heap, h)
		d.bytes += h.size()
	}
	if len(recs) == 0 || len(recs) < count && sumSize(recs) < bytes {
		d.bounded = false
	} else {
		d.bound = recs[len(recs)-1].Cursor()
	}
	for _, h := range during {
		if _, dup := read[h.c]; dup || d.bounded && d.bound.Less(h.c) {
			continue
		}
		heap.Push(&d.heap, h)
		d.bytes += h.size()
	}
	d.trimLocked()
	d.armLocked()
}

// sumSize is the size of read records as the window counts them.
func sumSize(recs []store.Delayed) int {
	n := 0
	for i := range recs {
		n += len(recs[i].Msg.Body) + len(recs[i].Msg.Properties)
	}
	return n
}

// heldFrom rebuilds a held message read from the store.
func heldFrom(r *store.Delayed) *held {
	m := &queue.Message{Exchange: r.Msg.Exchange, RoutingKey: r.Msg.RoutingKey, RawProperties: r.Msg.Properties,
		Body: r.Msg.Body, Persistent: r.Msg.Persistent, HasTTL: r.TTL >= 0, TTL: max(r.TTL, 0)}
	// The properties were valid when published; a failure leaves them empty, not wrong.
	_ = m.Properties.Decode(r.Msg.Properties)
	delay, _ := exchange.Delay(m.Properties.Headers)
	return &held{c: r.Cursor(), delay: delay, keys: r.Keys, msg: m}
}

// deliver routes a due message with the exchange's bindings now, as the plugin does, with
// x-delay set to minus the delay (so a republish of it is not delayed again unless asked),
// then tells the store it was delivered.
func (d *delayer) deliver(h *held) {
	m := h.msg
	m.Properties.Headers = setDelayHeader(m.Properties.Headers, -h.delay)
	m.RawProperties = m.Properties.Append(nil)
	d.v.publishNow(d.x, "", m, h.keys, nil, &d.scratch)
	d.pending.Add(-1)
	if d.st != nil {
		d.st.DeleteDelayed(d.v.name, d.x.def.Name, h.c, nil)
	}
}

// setDelayHeader returns headers with x-delay set to ms as a signed 32-bit integer (the
// plugin's signedint), in its place if it was there.
func setDelayHeader(headers amqpwire.Table, ms int64) amqpwire.Table {
	var out amqpwire.Table
	set := false
	v := any(int32(ms))
	if ms < -1<<31 {
		v = ms // beyond signedint: a long, rather than a wrapped number
	}
	_ = headers.Each(func(k string, old any) error {
		var err error
		if k == exchange.DelayHeader {
			if set {
				return nil
			}
			old, set = v, true
		}
		out, err = amqpwire.AppendField(out, k, old)
		return err
	})
	if !set {
		out, _ = amqpwire.AppendField(out, exchange.DelayHeader, v)
	}
	return out
}

// recovered starts a delayer over count stored messages: its window is empty and a pass
// reads the first ones now.
func (d *delayer) recovered(count int64) {
	d.mu.Lock()
	d.bounded, d.bound = true, store.DelayedCursor{}
	d.mu.Unlock()
	d.pending.Store(count)
	d.kick()
}

// stop ends the delayer: its timer is stopped, its window dropped, and a refill in flight
// waited for. The caller deletes the stored messages.
func (d *delayer) stop() {
	d.mu.Lock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	clear(d.heap)
	d.heap, d.bytes = nil, 0
	d.during = nil
	d.mu.Unlock()
	d.reads.Wait()
}
