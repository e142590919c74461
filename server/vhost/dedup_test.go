package vhost

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// stepClock is a clock the test moves by hand.
type stepClock struct{ now int64 }

func (c *stepClock) Now() int64 { return c.now }

// At runs nothing: the deduplication tests only read the time.
func (c *stepClock) At(int64, func()) queue.Timer { return stoppedTimer{} }

type stoppedTimer struct{}

func (stoppedTimer) Stop() bool { return false }

func table(t *testing.T, m map[string]any) amqpwire.Table {
	t.Helper()
	tb, err := amqpwire.NewTable(m)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// dedupFixture is a vhost with a step clock and a confirm-mode publisher.
type dedupFixture struct {
	t     *testing.T
	v     *Vhost
	clock *stepClock
	s     Scratch
}

func newDedupFixture(t *testing.T, st *store.Store) *dedupFixture {
	f := &dedupFixture{t: t, v: New("/", zerolog.Nop(), st, queue.Window{}), clock: &stepClock{now: 1_000_000}}
	f.v.clock = f.clock
	return f
}

func (f *dedupFixture) queue(name string, durable bool, args map[string]any) {
	f.t.Helper()
	if _, err := f.v.DeclareQueue(nil, QueueDecl{Name: name, Durable: durable, Args: table(f.t, args)}); err != nil {
		f.t.Fatalf("declare queue %s: %v", name, err)
	}
}

// publish publishes a message with headers h to exchange x (routing key key) in confirm mode,
// and returns what the publisher is told: routed (not returned) and refused (nacked).
func (f *dedupFixture) publish(x, key string, h map[string]any, props ...func(*amqpwire.Properties)) (routed, refused bool) {
	f.t.Helper()
	xr, err := f.v.Exchange(x)
	if err != nil {
		f.t.Fatal(err)
	}
	p := amqpwire.Properties{}
	if h != nil {
		p.Flags |= amqpwire.FlagHeaders
		p.Headers = table(f.t, h)
	}
	for _, set := range props {
		set(&p)
	}
	c := &testConfirm{nackable: true}
	msg := &queue.Message{Exchange: x, RoutingKey: key, Properties: p, RawProperties: p.Append(nil), Body: []byte("m")}
	routed, refused = f.v.Publish(xr, msg, []string{key}, c, &f.s)
	if !c.settled() {
		f.t.Fatalf("confirm left waiting: %v", c)
	}
	return routed, refused
}

func (f *dedupFixture) ready(name string) int {
	f.t.Helper()
	q, err := f.v.QueueFor(nil, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return q.Core().Stats().Ready
}

func id(v any) map[string]any { return map[string]any{"x-deduplication-header": v} }

// A queue with x-message-deduplication takes a message whose id it has seen within the TTL
// as taken (routed, not refused: the publisher gets an ack and no return) but does not
// enqueue it; after the TTL, on the injected clock, the same id is new again. Messages
// without the header, and ids that differ only in type, are never duplicates.
func TestDedupQueueWithinTTL(t *testing.T) {
	f := newDedupFixture(t, nil)
	f.queue("q", false, map[string]any{"x-message-deduplication": true, "x-cache-ttl": int32(1000)})
	steps := []struct {
		what    string
		advance int64
		headers map[string]any
		ready   int
	}{
		{"first a", 0, id("a"), 1},
		{"a again", 0, id("a"), 1},
		{"a again 999 ms later", 999, id("a"), 1},
		{"a at the end of its window", 1, id("a"), 2},
		{"no header", 0, nil, 3},
		{"no header again", 0, nil, 4},
		{"integer 7", 0, id(int32(7)), 5},
		{"string 7", 0, id("7"), 6},
		{"integer 7 again", 0, id(int32(7)), 6},
	}
	for _, st := range steps {
		f.clock.now += st.advance
		routed, refused := f.publish("", "q", st.headers)
		if !routed || refused {
			t.Errorf("%s: routed %v refused %v, want routed and not refused", st.what, routed, refused)
		}
		if got := f.ready("q"); got != st.ready {
			t.Fatalf("%s: %d ready, want %d", st.what, got, st.ready)
		}
	}
}

// The id is the header x-deduplication-header names; the message-id property and the default
// header then do not count (LavinMQ reads only the header). A message's own x-cache-ttl header
// shortens (or lengthens) its id's window.
func TestDedupHeaderAndMessageTTL(t *testing.T) {
	f := newDedupFixture(t, nil)
	f.queue("custom", false, map[string]any{"x-message-deduplication": true, "x-deduplication-header": "order"})
	f.queue("plain", false, map[string]any{"x-message-deduplication": true, "x-cache-ttl": int32(60_000)})
	msgID := func(s string) func(*amqpwire.Properties) {
		return func(p *amqpwire.Properties) { p.Flags |= amqpwire.FlagMessageID; p.MessageID = s }
	}
	f.publish("", "custom", map[string]any{"order": "o1", "x-deduplication-header": "same"})
	f.publish("", "custom", map[string]any{"order": "o2", "x-deduplication-header": "same"})
	f.publish("", "custom", map[string]any{"order": "o1"})
	if got := f.ready("custom"); got != 2 {
		t.Errorf("custom header: %d ready, want 2 (o1, o2; the default header ignored)", got)
	}
	f.publish("", "plain", nil, msgID("m1"))
	f.publish("", "plain", nil, msgID("m1"))
	if got := f.ready("plain"); got != 2 {
		t.Errorf("same message-id, no header: %d ready, want 2 (message-id is not an id)", got)
	}
	f.publish("", "plain", map[string]any{"x-deduplication-header": "short", "x-cache-ttl": int32(10)})
	f.clock.now += 10
	f.publish("", "plain", map[string]any{"x-deduplication-header": "short"})
	f.publish("", "plain", map[string]any{"x-deduplication-header": "long"})
	f.clock.now += 59_999
	f.publish("", "plain", map[string]any{"x-deduplication-header": "long"})
	if got := f.ready("plain"); got != 5 {
		t.Errorf("x-cache-ttl header: %d ready, want 5 (short twice after its 10 ms, long once within 60 s)", got)
	}
}

// The cache holds x-cache-size ids and evicts the least recently seen: a duplicate refreshes
// its id, so the id evicted is the one not seen since.
func TestDedupSizeEvictsLeastRecentlySeen(t *testing.T) {
	f := newDedupFixture(t, nil)
	f.queue("q", false, map[string]any{"x-message-deduplication": true, "x-cache-size": int32(2)})
	for _, s := range []string{"a", "b", "a", "c"} { // a is a duplicate; c evicts b, not a
		f.publish("", "q", id(s))
	}
	if got := f.ready("q"); got != 3 {
		t.Fatalf("%d ready after a b a c, want 3", got)
	}
	f.publish("", "q", id("a"))
	if got := f.ready("q"); got != 3 {
		t.Errorf("a after a b a c: taken again (%d ready), want a duplicate: a was seen after b", got)
	}
	f.publish("", "q", id("b"))
	if got := f.ready("q"); got != 4 {
		t.Errorf("b after a b a c: %d ready, want 4: b was evicted", got)
	}
	q, _ := f.v.QueueFor(nil, "q")
	if n := q.dedup.Len(); n != 2 {
		t.Errorf("cache holds %d ids, want at most its size 2", n)
	}
}

// An exchange with x-message-deduplication routes a duplicate nowhere, not even to its
// alternate exchange, and the publisher is told it was routed (no basic.return, an ack).
func TestDedupExchange(t *testing.T) {
	f := newDedupFixture(t, nil)
	mustDeclareX(t, f.v, "ae", "fanout", nil)
	mustDeclareX(t, f.v, "x", "fanout", map[string]any{"x-message-deduplication": true, "alternate-exchange": "ae"})
	mustDeclareX(t, f.v, "lonely", "fanout", map[string]any{"x-message-deduplication": true, "alternate-exchange": "ae"})
	for _, q := range []string{"q1", "q2", "spill"} {
		f.queue(q, false, nil)
	}
	mustBind(t, f.v, "x", binding.DestQueue, "q1", "")
	mustBind(t, f.v, "x", binding.DestQueue, "q2", "")
	mustBind(t, f.v, "ae", binding.DestQueue, "spill", "")
	for i := 0; i < 3; i++ {
		if routed, refused := f.publish("x", "", id("a")); !routed || refused {
			t.Errorf("publish %d: routed %v refused %v, want routed, not refused", i, routed, refused)
		}
		f.publish("lonely", "", id("a")) // unroutable but to the AE: the AE gets it once
	}
	f.publish("x", "", id("b"))
	for q, want := range map[string]int{"q1": 2, "q2": 2, "spill": 1} {
		if got := f.ready(q); got != want {
			t.Errorf("queue %s: %d ready, want %d", q, got, want)
		}
	}
	if f.s.Routed() != 2 {
		t.Errorf("the last publish routed to %d queues, want 2", f.s.Routed())
	}
	f.publish("x", "", id("b"))
	if f.s.Routed() != 0 {
		t.Errorf("a duplicate routed to %d queues, want 0", f.s.Routed())
	}
}

// A message a queue refuses (x-overflow reject-publish) is nacked and its id is not kept:
// the publisher's retry, once there is room, is taken.
func TestDedupRefusedIsNotRemembered(t *testing.T) {
	f := newDedupFixture(t, nil)
	f.queue("q", false, map[string]any{"x-message-deduplication": true, "x-max-length": int32(1), "x-overflow": "reject-publish"})
	f.publish("", "q", id("a"))
	if _, refused := f.publish("", "q", id("b")); !refused {
		t.Fatal("b to a full reject-publish queue: not refused")
	}
	q, _ := f.v.QueueFor(nil, "q")
	q.Core().Purge()
	if routed, refused := f.publish("", "q", id("b")); !routed || refused {
		t.Fatalf("retry of b: routed %v refused %v", routed, refused)
	}
	if got := f.ready("q"); got != 1 {
		t.Errorf("retry of the refused b: %d ready, want 1 (b taken)", got)
	}
}

// Bad values are refused with 406 and RabbitMQ's wording for queue arguments; the exchange
// form names the exchange.
func TestDedupArgumentErrors(t *testing.T) {
	for _, tc := range []struct {
		args map[string]any
		text string
	}{
		{map[string]any{"x-message-deduplication": "yes"}, "invalid arg 'x-message-deduplication' for %s 'd' in vhost '/': {unacceptable_type,longstr}"},
		{map[string]any{"x-cache-size": "big"}, `invalid arg 'x-cache-size' for %s 'd' in vhost '/': "expected integer, got longstr"`},
		{map[string]any{"x-cache-size": int32(0)}, "invalid arg 'x-cache-size' for %s 'd' in vhost '/': {value_zero,0}"},
		{map[string]any{"x-cache-size": int32(-3)}, "invalid arg 'x-cache-size' for %s 'd' in vhost '/': {value_negative,-3}"},
		{map[string]any{"x-cache-size": int64(20_000_000)}, "invalid arg 'x-cache-size' for %s 'd' in vhost '/': {value_too_large,20000000}"},
		{map[string]any{"x-cache-ttl": int32(-1)}, "invalid arg 'x-cache-ttl' for %s 'd' in vhost '/': {value_negative,-1}"},
		{map[string]any{"x-cache-ttl": int32(0)}, "invalid arg 'x-cache-ttl' for %s 'd' in vhost '/': {value_zero,0}"},
		{map[string]any{"x-cache-ttl": 1.5}, `invalid arg 'x-cache-ttl' for %s 'd' in vhost '/': "expected integer, got double"`},
		{map[string]any{"x-deduplication-header": int32(1)}, "invalid arg 'x-deduplication-header' for %s 'd' in vhost '/': {unacceptable_type,signedint}"},
		{map[string]any{"x-deduplication-header": ""}, "invalid arg 'x-deduplication-header' for %s 'd' in vhost '/': empty_header_name"},
	} {
		v := testVhost(t)
		_, qerr := v.DeclareQueue(nil, QueueDecl{Name: "d", Args: table(t, tc.args)})
		xerr := v.DeclareExchange(exchange.Definition{Name: "d", Kind: "direct", Args: table(t, tc.args)}, false)
		for kind, err := range map[string]error{"queue": qerr, "exchange": xerr} {
			code, text := replyCode(t, err)
			want := "PRECONDITION_FAILED - " + fmt.Sprintf(tc.text, kind)
			if code != amqpwire.CodePreconditionFailed || text != want {
				t.Errorf("%s with %v: %d %q, want 406 %q", kind, tc.args, code, text, want)
			}
		}
		if v.HasQueue("d") || v.HasExchange("d") {
			t.Errorf("%v: a refused declare created something", tc.args)
		}
	}
}

// The cache of a durable queue and of a durable exchange survives a restart, expiry and
// order included; deleting the queue forgets its ids, so a new queue of that name starts
// empty.
func TestDedupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Registry, *store.Store) {
		st, err := store.Open(store.Options{Dir: dir, NoSync: true, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		r := NewRegistry(zerolog.Nop(), st, queue.Window{})
		return r, st
	}
	r, st := open()
	start := time.Now().UnixMilli() // recovery reads the wall clock
	f := &dedupFixture{t: t, v: r.Get("/"), clock: &stepClock{now: start}}
	f.v.clock = f.clock
	f.queue("dq", true, map[string]any{"x-message-deduplication": true, "x-cache-ttl": int32(5000), "x-cache-size": int32(2)})
	if err := f.v.DeclareExchange(exchange.Definition{Name: "dx", Kind: "fanout", Durable: true,
		Args: table(t, map[string]any{"x-message-deduplication": true})}, false); err != nil {
		t.Fatal(err)
	}
	f.queue("sink", true, nil)
	mustBind(t, f.v, "dx", binding.DestQueue, "sink", "")
	for _, s := range []string{"a", "b", "a", "c"} { // cache of dq: a, c (b evicted)
		f.publish("", "dq", id(s))
	}
	f.publish("dx", "", id("x1"))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	r, st = open()
	defer st.Close()
	if err := r.Recover(); err != nil {
		t.Fatal(err)
	}
	f = &dedupFixture{t: t, v: r.Get("/"), clock: &stepClock{now: start + 4000}}
	f.v.clock = f.clock
	dq, err := f.v.QueueFor(nil, "dq")
	if err != nil {
		t.Fatal(err)
	}
	dx, err := f.v.Exchange("dx")
	if err != nil {
		t.Fatal(err)
	}
	if dq.dedup == nil || dx.dedup == nil {
		t.Fatalf("after the restart: queue cache %v, exchange cache %v; want both", dq.dedup, dx.dedup)
	}
	dq.dedup.clock, dx.dedup.clock = f.clock, f.clock
	before := f.ready("dq")
	f.publish("", "dq", id("a"))
	f.publish("", "dq", id("c"))
	if got := f.ready("dq"); got != before {
		t.Errorf("a and c after the restart: taken again (%d ready, was %d), want duplicates", got, before)
	}
	f.publish("", "dq", id("b"))
	if got := f.ready("dq"); got != before+1 {
		t.Errorf("b (evicted before the restart): %d ready, want %d", got, before+1)
	}
	f.clock.now += 1000 // a's window of 5 s is over
	f.publish("", "dq", id("a"))
	if got := f.ready("dq"); got != before+2 {
		t.Errorf("a after its window: %d ready, want %d", got, before+2)
	}
	// sink's transient x1 is gone with the restart; the exchange still knows x1.
	f.publish("dx", "", id("x1"))
	f.publish("dx", "", id("x2"))
	if got := f.ready("sink"); got != 1 {
		t.Errorf("x1 and x2 to the durable exchange after the restart: sink has %d, want 1 (x2 only)", got)
	}

	if _, err := f.v.DeleteQueue(nil, "dq", false, false); err != nil {
		t.Fatal(err)
	}
	f.queue("dq", true, map[string]any{"x-message-deduplication": true})
	f.publish("", "dq", id("c"))
	if got := f.ready("dq"); got != 1 {
		t.Errorf("c to a new queue of the same name: %d ready, want 1 (the old cache is gone)", got)
	}
}

// Publishers racing with the same id: exactly one copy is taken, whatever the interleaving
// (the check and the insert are one step). Run with -race.
func TestDedupConcurrentPublishers(t *testing.T) {
	f := newDedupFixture(t, nil)
	f.queue("q", false, map[string]any{"x-message-deduplication": true})
	mustDeclareX(t, f.v, "x", "fanout", map[string]any{"x-message-deduplication": true})
	f.queue("behind-x", false, nil)
	mustBind(t, f.v, "x", binding.DestQueue, "behind-x", "")
	const publishers, rounds = 8, 50
	h := table(t, map[string]any{"x-deduplication-header": "same"})
	p := amqpwire.Properties{Flags: amqpwire.FlagHeaders, Headers: h}
	done := make(chan struct{})
	for range publishers {
		go func() {
			defer func() { done <- struct{}{} }()
			var s Scratch
			q, _ := f.v.Exchange("")
			x, _ := f.v.Exchange("x")
			for range rounds {
				f.v.Publish(q, &queue.Message{RoutingKey: "q", Properties: p, RawProperties: p.Append(nil)}, []string{"q"}, nil, &s)
				f.v.Publish(x, &queue.Message{Exchange: "x", Properties: p, RawProperties: p.Append(nil)}, []string{""}, nil, &s)
			}
		}()
	}
	for range publishers {
		<-done
	}
	if got := f.ready("q"); got != 1 {
		t.Errorf("queue: %d copies of one id taken, want 1", got)
	}
	if got := f.ready("behind-x"); got != 1 {
		t.Errorf("exchange: %d copies of one id routed, want 1", got)
	}
}

// A dead-letter queue with deduplication checks dead-lettered messages too: they keep their
// headers, so two messages with one id rejected into it leave one copy.
func TestDedupDeadLetterQueue(t *testing.T) {
	f := newDedupFixture(t, nil)
	mustDeclareX(t, f.v, "dlx", "fanout", nil)
	f.queue("dead", false, map[string]any{"x-message-deduplication": true})
	mustBind(t, f.v, "dlx", binding.DestQueue, "dead", "")
	f.queue("work", false, map[string]any{"x-dead-letter-exchange": "dlx", "x-message-ttl": int32(0)})
	f.publish("", "work", id("a")) // TTL 0 and no consumer: dead-lettered at once
	f.publish("", "work", id("a"))
	f.publish("", "work", id("b"))
	if got := f.ready("dead"); got != 2 {
		t.Errorf("dead-letter queue holds %d, want 2 (a once, b)", got)
	}
}
