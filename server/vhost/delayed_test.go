package vhost

import (
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// fakeClock runs the callbacks armed with At when advance passes their time, on the caller's
// goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    int64
	timers []*fakeTimer
}

type fakeTimer struct {
	at      int64
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (c *fakeClock) Now() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) At(at int64, f func()) queue.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: at, f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves the time to now, running every callback due by then (and those they arm).
func (c *fakeClock) advance(now int64) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due *fakeTimer
		for i, t := range c.timers {
			if !t.stopped && t.at <= now {
				due = t
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		if due == nil {
			return
		}
		due.stopped = true
		due.f()
	}
}

// waitConfirm is a Confirm whose writes may end on the store's writer goroutine.
type waitConfirm struct{ wg sync.WaitGroup }

func (c *waitConfirm) Add()                            { c.wg.Add(1) }
func (c *waitConfirm) Done(err error)                  { c.wg.Done() }
func (c *waitConfirm) Hold(*queue.Queue, *queue.Entry) {}
func (c *waitConfirm) Nackable() bool                  { return true }

func storeVhost(t *testing.T, clock queue.Clock) *Vhost {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v := New("/", zerolog.Nop(), st, queue.Window{})
	if clock != nil {
		v.clock = clock
	}
	return v
}

func delayedMsg(t testing.TB, body string, delay int64, size int) *queue.Message {
	h, err := amqpwire.NewTable(map[string]any{"x-delay": delay})
	if err != nil {
		t.Fatal(err)
	}
	m := &queue.Message{Exchange: "d", RoutingKey: "k", Body: make([]byte, size), Persistent: true}
	copy(m.Body, body)
	m.Properties.Headers = h
	m.Properties.Flags = amqpwire.FlagHeaders
	m.RawProperties = m.Properties.Append(nil)
	return m
}

// With a window of 64 and 2,000 held messages, the delayer keeps at most twice the window in
// memory, and as the clock advances it routes every message that is due and none that is
// not, in due order, reading the rest from the store as the window drains.
func TestDelayedWindowRoutesInDueOrder(t *testing.T) {
	clock := &fakeClock{now: 1_000_000}
	v := storeVhost(t, clock)
	mustDeclareX(t, v, "d", "x-delayed-message", map[string]any{"x-delayed-type": "direct"})
	mustDeclareQ(t, v, "q")
	mustBind(t, v, "d", binding.DestQueue, "q", "k")
	x, err := v.Exchange("d")
	if err != nil {
		t.Fatal(err)
	}
	x.delay.window, x.delay.windowBytes = 64, 1<<20
	const n = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	due := make(map[string]int64, n)
	var c waitConfirm
	var s Scratch
	for i := range n {
		d := 1 + rng.Int64N(20_000)
		body := strconv.Itoa(i)
		due[body] = clock.Now() + d + 1 // rounded up: never early
		if routed, refused := v.Publish(x, delayedMsg(t, body, d, 16), []string{"k"}, &c, &s); !routed || refused {
			t.Fatalf("publish %d: routed %v refused %v", i, routed, refused)
		}
	}
	c.wg.Wait()
	x.delay.mu.Lock()
	inMemory := len(x.delay.heap)
	x.delay.mu.Unlock()
	if inMemory > 2*64 {
		t.Fatalf("%d held messages in memory, want at most twice the window (128)", inMemory)
	}
	if got := x.Pending(); got != n {
		t.Fatalf("Pending = %d, want %d", got, n)
	}
	q := v.queues["q"].Core()
	var got []string
	for now := clock.Now(); len(got) < n && now < clock.Now()+30_000; {
		now += 250
		settle(clock, x.delay, now)
		for {
			e, _ := q.Get(true)
			if e == nil {
				break
			}
			b := string(trimZero(e.Msg.Body))
			if due[b] > now {
				t.Fatalf("message %s due at %d routed at %d", b, due[b], now)
			}
			got = append(got, b)
		}
		for b, d := range due {
			if d <= now && !contains(got, b) {
				t.Fatalf("message %s due at %d not routed by %d", b, d, now)
			}
		}
	}
	if len(got) != n {
		t.Fatalf("routed %d of %d", len(got), n)
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool { return due[got[i]] < due[got[j]] }) {
		t.Errorf("not routed in due order")
	}
	if got := x.Pending(); got != 0 {
		t.Errorf("Pending = %d after all were routed", got)
	}
	if err := v.st.Flush(); err != nil {
		t.Fatal(err)
	}
	if left, _ := v.st.ReadDelayed("/", "d", nil, 10, 1<<20); len(left) != 0 {
		t.Errorf("%d held records left in the store after routing", len(left))
	}
}

// settle advances the clock to now and waits until the delayer has routed everything due by
// then: passes run in advance, refills on their own goroutine, and a refill arms a pass.
func settle(clock *fakeClock, d *delayer, now int64) {
	for {
		clock.advance(now)
		d.reads.Wait()
		d.mu.Lock()
		idle := !d.refilling && (len(d.heap) == 0 || d.heap[0].c.Due > now)
		d.mu.Unlock()
		if idle && !clock.hasDue(now) {
			return
		}
	}
}

func (c *fakeClock) hasDue(now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.stopped && t.at <= now {
			return true
		}
	}
	return false
}

func trimZero(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// 100,000 held messages of 2 KiB (200 MiB of bodies) are on disk, not in the heap: the
// delayer's window holds at most twice its size, and the heap grows by less than half of what
// they add up to.
func TestDelayedPendingNotInHeap(t *testing.T) {
	v := storeVhost(t, nil)
	mustDeclareX(t, v, "d", "x-delayed-message", map[string]any{"x-delayed-type": "fanout"})
	x, err := v.Exchange("d")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n, size = 100_000, 2048
	var c waitConfirm
	var s Scratch
	for i := range n {
		v.Publish(x, delayedMsg(t, strconv.Itoa(i), 3_600_000, size), nil, &c, &s)
		if i%10_000 == 0 {
			c.wg.Wait() // as a publisher with confirms in flight would
		}
	}
	c.wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %.1f MiB for %d held messages of %d bytes", float64(grew)/(1<<20), n, size)
	if x.Pending() != n {
		t.Fatalf("Pending = %d, want %d", x.Pending(), n)
	}
	x.delay.mu.Lock()
	inWindow := len(x.delay.heap)
	x.delay.mu.Unlock()
	if limit := 2 * delayWindowBytes / size; inWindow > limit {
		t.Errorf("%d messages in the window, want at most %d", inWindow, limit)
	}
	if limit := int64(n * size / 2); grew > limit {
		t.Errorf("heap grew by %d bytes holding %d messages of %d bytes, want under %d: they should be on disk", grew, n, size, limit)
	}
}

// Small held messages are bounded by count: 100,000 of 64 bytes (6 MiB, under the byte
// budget) leave at most twice delayWindow of them in memory, the rest on disk.
func TestDelayedWindowCountBound(t *testing.T) {
	v := storeVhost(t, nil)
	mustDeclareX(t, v, "d", "x-delayed-message", map[string]any{"x-delayed-type": "fanout"})
	x, err := v.Exchange("d")
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 100_000, 64
	var c waitConfirm
	var s Scratch
	for i := range n {
		v.Publish(x, delayedMsg(t, strconv.Itoa(i), 3_600_000, size), nil, &c, &s)
		if i%10_000 == 0 {
			c.wg.Wait()
		}
	}
	c.wg.Wait()
	if x.Pending() != n {
		t.Fatalf("Pending = %d, want %d", x.Pending(), n)
	}
	x.delay.mu.Lock()
	inWindow := len(x.delay.heap)
	x.delay.mu.Unlock()
	if inWindow > 2*delayWindow || inWindow == 0 {
		t.Errorf("%d messages in the window, want 1 to %d", inWindow, 2*delayWindow)
	}
}
