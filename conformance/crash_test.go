package conformance

// Crash-safety tests: they run the real warren binary, kill it (SIGKILL) or stop it (SIGTERM),
// start it again on the same data directory and check what survived. They are Warren-only: with
// AMQP_URL set there is no process to kill.
//
// TestCrashConfirmedMessagesSurvive picks its kill points from a seed that it logs; rerun a
// failure with the same kill points by setting WARREN_CRASH_SEED to it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The crash test's durable queues and exchange. Each test has its own data directory and broker,
// so the names are fixed.
const (
	crashQueue   = "crash.main"    // plain rounds publish here; consumed while publishing
	crashFanout  = "crash.fanout"  // durable fanout exchange bound to the two queues below
	crashFanA    = "crash.fan.a"   // consumed while publishing
	crashFanB    = "crash.fan.b"   // only drained at verifications: its copies outlive the acks in A
	crashMarkers = "crash.markers" // ack markers, see crashMark
)

const (
	crashRounds     = 24 // kill points, one per round
	crashPublishers = 4
	crashInFlight   = 32 // unconfirmed publishes per publisher
	crashMaxBatch   = 40 // the consumer acks after 1…crashMaxBatch deliveries
	// Every crashFanoutEvery-th round, half the publishers publish through crashFanout.
	crashFanoutEvery = 3
	crashCleanCount  = 60 // messages published before the final clean restart
)

// crashSeed returns WARREN_CRASH_SEED or a fresh seed, and logs it.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("WARREN_CRASH_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WARREN_CRASH_SEED=%q: %v", s, err)
		}
		t.Logf("seed %d (from WARREN_CRASH_SEED)", seed)
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (rerun with WARREN_CRASH_SEED=%d)", seed, seed)
	return seed
}

// TestCrashConfirmedMessagesSurvive kills the broker with SIGKILL at random points while four
// publishers publish persistent messages with confirms and a consumer acks them, restarts it on
// the same data directory each time, and checks after each restart that
//   - every confirmed message that was not acked is there exactly once, with its properties and
//     headers, marked redelivered;
//   - no message whose ack was known to be durable comes back, nor one that was missing at an
//     earlier restart;
//   - only unconfirmed messages may be duplicated;
//   - durable queues, the durable fanout exchange and its bindings survive.
//
// An ack is known to be durable once a persistent "marker" published after it on the same
// connection is confirmed: the broker's store writer commits in arrival order.
//
// Some verifications requeue what they found instead of acking it, so that recovered messages
// must survive the next crash too. The test ends with a clean SIGTERM restart, after which
// messages never delivered must come back not redelivered.
func TestCrashConfirmedMessagesSurvive(t *testing.T) {
	warrenOnly(t, "kills and restarts the warren binary")
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	m := newCrashModel()
	began := time.Now()

	queues := []string{crashQueue} // the durable queues that hold test messages
	confirmed := 0
	for round := 0; round < crashRounds; round++ {
		p := runner.start()
		conn := dialConfig(t, p.url, amqp.Config{})
		if round > 0 {
			keep := rng.IntN(3) == 0
			m.verify(t, fmt.Sprintf("start of round %d, after the kill in round %d", round, round-1), conn, queues, true, keep)
		}
		fanout := round%crashFanoutEvery == crashFanoutEvery-1
		bindFanout := fanout && !slices.Contains(queues, crashFanA)
		if bindFanout {
			queues = append(queues, crashFanA, crashFanB)
		}
		crashDeclare(t, conn, queues, bindFanout)

		delay := time.Duration(20+rng.IntN(381)) * time.Millisecond
		st := crashRound(t, p, round, fanout, queues, delay, rng.Uint64(), m)
		t.Logf("round %2d: killed after %v; published %d, confirmed %d (nacked %d, no confirm %d); consumer received %d, acked %d, durably acked %d",
			round, delay, st.published, st.confirmed, st.nacked, st.published-st.confirmed-st.nacked, st.received, st.ackSent, st.ackDurable)
		confirmed += st.confirmed
		if t.Failed() {
			t.FailNow()
		}
	}

	if confirmed == 0 {
		t.Fatalf("no publish was confirmed in %d rounds: nothing was tested", crashRounds)
	}

	// Recover from the last kill, then check a clean restart.
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	m.verify(t, fmt.Sprintf("after the kill in round %d", crashRounds-1), conn, queues, true, false)
	pub := newPublisher(t, conn)
	for seq := range crashCleanCount {
		msg := crashMsg{round: crashRounds, seq: seq, fanout: seq%3 == 0}
		exchange, key, to := msg.route()
		m.published(msg, to)
		pub.publish(exchange, key, false, msg.publishing())
		m.confirmed(msg.id(), to)
	}
	p.terminate(t)
	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	m.verify(t, "after a clean restart", conn, queues, false, false)
	p.terminate(t)
	t.Logf("%d kill points and a clean restart in %v", crashRounds, time.Since(began).Round(time.Millisecond))
}

// crashDeclare declares the durable queues and, with bindFanout, the fanout exchange and its
// bindings, then makes sure the declarations are durable before the round's kill: a confirmed
// marker follows them through the store writer. The bindings are made only once: later rounds
// rely on them having survived the kills.
func crashDeclare(t *testing.T, conn *amqp.Connection, queues []string, bindFanout bool) {
	t.Helper()
	ch := channel(t, conn)
	for _, q := range append([]string{crashMarkers}, queues...) {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatalf("declare durable queue %s: %v", q, err)
		}
	}
	if _, err := ch.QueuePurge(crashMarkers, false); err != nil {
		t.Fatalf("purge %s: %v", crashMarkers, err)
	}
	if bindFanout {
		if err := ch.ExchangeDeclare(crashFanout, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			t.Fatalf("declare durable exchange %s: %v", crashFanout, err)
		}
		for _, q := range []string{crashFanA, crashFanB} {
			bind(t, ch, q, "", crashFanout, nil)
		}
	} else if slices.Contains(queues, crashFanA) {
		if err := ch.ExchangeDeclarePassive(crashFanout, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			t.Fatalf("durable exchange %s after a restart: %v", crashFanout, err)
		}
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	marks, err := crashMarkerChannel(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer marks.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := crashMark(ctx, marks); err != nil {
		t.Fatalf("marker after the declarations: %v", err)
	}
}

// crashRoundStats are one round's counts.
type crashRoundStats struct {
	published, confirmed, nacked  int
	received, ackSent, ackDurable int
}

// crashRound runs the publishers and the consumer against p, kills p after delay and waits for
// them to notice.
func crashRound(t *testing.T, p *brokerProc, round int, fanout bool, queues []string, delay time.Duration, consumerSeed uint64, m *crashModel) crashRoundStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procTimeout)
	defer cancel()
	killed := make(chan struct{})
	var wg sync.WaitGroup
	pubs := make([]crashPubStats, crashPublishers)
	for i := range pubs {
		wg.Go(func() {
			pubs[i] = crashPublish(ctx, p.url, crashMsg{round: round, pub: i, fanout: fanout && i%2 == 1}, m, killed)
		})
	}
	var cons crashConsStats
	consumeFrom := []string{crashQueue}
	if slices.Contains(queues, crashFanA) {
		consumeFrom = append(consumeFrom, crashFanA)
	}
	wg.Go(func() { cons = crashConsume(ctx, p.url, consumeFrom, consumerSeed, m, killed) })

	// The fault injection: a random point in the traffic.
	<-time.After(delay)
	close(killed)
	p.kill(t)

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(procTimeout):
		t.Fatalf("round %d: clients still running %v after the kill", round, procTimeout)
	}

	var st crashRoundStats
	for i, ps := range pubs {
		st.published += ps.published
		st.confirmed += ps.confirmed
		st.nacked += ps.nacked
		if ps.early != nil {
			t.Errorf("round %d: publisher %d failed before the kill: %v", round, i, ps.early)
		}
	}
	st.received, st.ackSent, st.ackDurable = cons.received, cons.ackSent, cons.ackDurable
	if cons.unknown > 0 {
		t.Errorf("round %d: the consumer received %d messages the test never published", round, cons.unknown)
	}
	if cons.early != nil {
		t.Errorf("round %d: the consumer failed before the kill: %v", round, cons.early)
	}
	return st
}

// TestCleanRestartKeepsDefinitionsAndOrder stops the broker with SIGTERM and starts it again on
// the same data directory. Durable exchanges, queues (with their arguments) and bindings,
// including an exchange-to-exchange binding and a headers binding with arguments, survive and
// still route; transient and exclusive queues and transient exchanges do not. Persistent
// messages come back in publish order with their properties, transient ones are gone, and a
// message that had been delivered (requeued with a nack, or unacked when the connection was
// closed) comes back redelivered while the others do not.
func TestCleanRestartKeepsDefinitionsAndOrder(t *testing.T) {
	warrenOnly(t, "restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	ch := channel(t, conn)

	const (
		src       = "clean.src"       // durable fanout, bound to dst
		dst       = "clean.dst"       // durable direct, bound to src
		headersX  = "clean.headers"   // durable headers exchange
		viaE2E    = "clean.via-e2e"   // bound to dst with "k"
		viaHdrs   = "clean.via-hdrs"  // bound to headersX with x-match all
		ordered   = "clean.ordered"   // persistent and transient messages
		requeued  = "clean.requeued"  // delivered before the restart
		transQ    = "clean.transient" // non-durable queue
		transX    = "clean.transient-x"
		exclusive = "clean.exclusive"
	)
	queueArgs := amqp.Table{"x-queue-type": "classic", "x-queue-mode": "lazy"} // compared on redeclare
	matchRed := amqp.Table{"x-match": "all", "color": "red", "size": int32(2)}
	for _, x := range []struct{ name, kind string }{{src, amqp.ExchangeFanout}, {dst, amqp.ExchangeDirect}, {headersX, amqp.ExchangeHeaders}} {
		if err := ch.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatalf("declare durable %s exchange %s: %v", x.kind, x.name, err)
		}
	}
	if err := ch.ExchangeBind(dst, "", src, false, nil); err != nil {
		t.Fatalf("bind exchange %s to %s: %v", dst, src, err)
	}
	for _, q := range []string{viaE2E, viaHdrs, ordered, requeued} {
		args := amqp.Table(nil)
		if q == ordered {
			args = queueArgs
		}
		if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			t.Fatalf("declare durable queue %s: %v", q, err)
		}
	}
	bind(t, ch, viaE2E, "k", dst, nil)
	bind(t, ch, viaHdrs, "", headersX, matchRed)
	if _, err := ch.QueueDeclare(transQ, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(transX, amqp.ExchangeDirect, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bind(t, ch, ordered, "t", transX, nil)
	if _, err := ch.QueueDeclare(exclusive, true, false, true, false, nil); err != nil {
		t.Fatal(err)
	}

	// Persistent p0…p9 and transient t0…t4 interleaved in one durable queue.
	pub := newPublisher(t, conn)
	props := func(body string, mode uint8) amqp.Publishing {
		return amqp.Publishing{
			ContentType: "text/plain", ContentEncoding: "utf-8", DeliveryMode: mode, Priority: 3,
			CorrelationId: "c-" + body, ReplyTo: "reply." + body, MessageId: "id-" + body,
			Timestamp: time.Unix(1_700_000_000, 0), Type: "clean", AppId: "warren-conformance",
			Headers: amqp.Table{"n": body, "i32": int32(-7), "i64": int64(1) << 40, "ok": true,
				"nested": amqp.Table{"k": "v"}, "list": []any{"a", int32(1)}},
			Body: []byte(body),
		}
	}
	var persistent []string
	for i := range 10 {
		body := fmt.Sprintf("p%d", i)
		persistent = append(persistent, body)
		pub.publish("", ordered, false, props(body, amqp.Persistent))
		if i%2 == 1 {
			pub.publish("", ordered, false, props(fmt.Sprintf("t%d", i/2), amqp.Transient))
		}
	}
	pub.publish(transX, "t", false, props("via-transient-exchange", amqp.Persistent)) // lands in ordered
	persistent = append(persistent, "via-transient-exchange")
	pub.publish(src, "k", false, props("e2e-before", amqp.Persistent))
	pub.publish("", transQ, false, props("in-transient-queue", amqp.Persistent))

	// requeued: r0 is delivered and nacked back, r1 is delivered and still unacked at the
	// shutdown, r2 is never delivered.
	for _, r := range []string{"r0", "r1", "r2"} {
		pub.publish("", requeued, false, props(r, amqp.Persistent))
	}
	sub := channel(t, conn)
	r0 := get(t, sub, requeued, false)
	get(t, sub, requeued, false)
	if err := r0.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, requeued, 2)

	p.terminate(t)
	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	ch = channel(t, conn)

	// Definitions: passive declares find the durable ones, and redeclaring with the same flags
	// and arguments succeeds (a 406 would mean that the durable flag, the kind or the arguments
	// were not restored). Each check has its own channel, so that one failure does not hide the
	// others.
	survived := func(what string, declare func(*amqp.Channel) error) {
		t.Helper()
		if err := declare(channel(t, conn)); err != nil {
			t.Errorf("%s after the restart: %v", what, err)
		}
	}
	for _, x := range []struct{ name, kind string }{{src, amqp.ExchangeFanout}, {dst, amqp.ExchangeDirect}, {headersX, amqp.ExchangeHeaders}} {
		survived("durable "+x.kind+" exchange "+x.name, func(c *amqp.Channel) error {
			if err := c.ExchangeDeclarePassive(x.name, x.kind, true, false, false, false, nil); err != nil {
				return err
			}
			return c.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil)
		})
	}
	for _, q := range []string{viaE2E, viaHdrs, ordered, requeued} {
		args := amqp.Table(nil)
		if q == ordered {
			args = queueArgs
		}
		survived("durable queue "+q, func(c *amqp.Channel) error {
			if _, err := c.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
				return err
			}
			_, err := c.QueueDeclare(q, true, false, false, false, args)
			return err
		})
	}
	if t.Failed() {
		t.FailNow()
	}
	gone := func(what string, declare func(*amqp.Channel) error) {
		t.Helper()
		err := declare(channel(t, conn))
		if err == nil {
			t.Errorf("%s survived the restart", what)
			return
		}
		wantError(t, err, amqp.NotFound, "NOT_FOUND")
	}
	gone("non-durable queue "+transQ, func(c *amqp.Channel) error {
		_, err := c.QueueDeclarePassive(transQ, false, false, false, false, nil)
		return err
	})
	gone("exclusive queue "+exclusive, func(c *amqp.Channel) error {
		_, err := c.QueueDeclarePassive(exclusive, true, false, false, false, nil)
		return err
	})
	gone("non-durable exchange "+transX, func(c *amqp.Channel) error {
		return c.ExchangeDeclarePassive(transX, amqp.ExchangeDirect, false, false, false, false, nil)
	})

	// Messages: counts first, then contents in order.
	wantMessages(t, ch, ordered, len(persistent))
	wantMessages(t, ch, viaE2E, 1)
	wantMessages(t, ch, requeued, 3)
	var bodies []string
	for _, d := range getAll(t, ch, ordered) {
		bodies = append(bodies, string(d.Body))
		if d.Redelivered {
			t.Errorf("%s: redelivered=true for a message never delivered", d.Body)
		}
		checkProperties(t, "after a clean restart", props(string(d.Body), amqp.Persistent), d)
	}
	equalStrings(t, "persistent messages after the restart", bodies, persistent)
	equalStrings(t, "requeued messages after the restart (* = redelivered)", drain(t, ch, requeued), []string{"r0*", "r1*", "r2"})
	equalStrings(t, "exchange-to-exchange message after the restart", getBodies(t, ch, viaE2E), []string{"e2e-before"})

	// Bindings still route: src → dst → viaE2E, and the headers binding with its arguments.
	pub = newPublisher(t, conn)
	pub.publish(src, "k", false, amqp.Publishing{Body: []byte("e2e-after")})
	pub.publish(src, "other", false, amqp.Publishing{Body: []byte("e2e-other-key")})
	pub.publish(headersX, "", false, amqp.Publishing{Headers: amqp.Table{"color": "red", "size": int32(2)}, Body: []byte("red-2")})
	pub.publish(headersX, "", false, amqp.Publishing{Headers: amqp.Table{"color": "red", "size": int32(3)}, Body: []byte("red-3")})
	pub.publish(headersX, "", false, amqp.Publishing{Headers: amqp.Table{"color": "red"}, Body: []byte("red")})
	equalStrings(t, "routed through the exchange-to-exchange binding", getBodies(t, ch, viaE2E), []string{"e2e-after"})
	equalStrings(t, "routed through the headers binding", getBodies(t, ch, viaHdrs), []string{"red-2"})

	// The binding of the durable queue to the transient exchange went with the exchange: a new
	// exchange of the same name routes nowhere.
	if err := ch.ExchangeDeclare(transX, amqp.ExchangeDirect, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	pub.publish(transX, "t", true, amqp.Publishing{Body: []byte("after-restart")})
	if _, ok := pub.returned(); !ok {
		t.Errorf("a message to the redeclared exchange %s was routed: its old binding to %s came back", transX, ordered)
		wantEmpty(t, ch, ordered)
	}
	p.terminate(t)
}
