package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server/queue"
)

// fakeClock is a queue.Clock the test moves by hand; due callbacks run inside advance.
type fakeClock struct {
	mu     sync.Mutex
	now    int64
	timers []*fakeTimer
	armed  int // At calls so far
}

type fakeTimer struct {
	c       *fakeClock
	at      int64
	f       func()
	stopped bool
}

func (c *fakeClock) Now() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(at int64, f func()) queue.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: at, f: f}
	c.timers = append(c.timers, t)
	c.armed++
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// armedCount is the number of At calls so far.
func (c *fakeClock) armedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// pending is the number of timers armed and not yet fired or stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// advance moves the clock by ms and runs the callbacks that fall due.
func (c *fakeClock) advance(ms int64) {
	c.mu.Lock()
	c.now += ms
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && t.at <= c.now {
			t.stopped = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// clockBroker runs a broker whose acknowledgement timeouts read clk, and opens a channel on it.
func clockBroker(t *testing.T, clk *fakeClock) (*Server, *amqp.Channel) {
	t.Helper()
	srv, addr := storeBroker(t, Config{Clock: clk, DisableFlowControl: true}, true)
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return srv, ch
}

func publishN(t *testing.T, ch *amqp.Channel, q string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func recvN(t *testing.T, ds <-chan amqp.Delivery, n int) []amqp.Delivery {
	t.Helper()
	out := make([]amqp.Delivery, 0, n)
	for len(out) < n {
		select {
		case d := <-ds:
			out = append(out, d)
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d deliveries of %d", len(out), n)
		}
	}
	return out
}

// Without configuration the consumer timeout is RabbitMQ 3.10's 1800000 ms: a delivery is
// allowed 30 minutes to the millisecond, then its channel is closed with RabbitMQ's 406.
func TestConsumerTimeoutDefaultsToThirtyMinutes(t *testing.T) {
	clk := &fakeClock{now: 1_000_000}
	_, ch := clockBroker(t, clk)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if _, err := ch.QueueDeclare("jobs", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume("jobs", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, ch, "jobs", 1)
	recvN(t, ds, 1)

	clk.advance(1_799_999)
	if _, err := ch.QueueDeclarePassive("jobs", false, false, false, false, nil); err != nil {
		t.Fatalf("channel closed before 30 minutes: %v", err)
	}
	clk.advance(1)
	select {
	case e := <-closed:
		want := "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms. " +
			"This timeout value can be configured, see consumers doc guide to learn more"
		if e == nil || e.Code != 406 || e.Reason != want {
			t.Fatalf("closed with %v, want 406 %q", e, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel still open 30 minutes after the delivery")
	}
}

// A channel arms one timer for all its deliveries, not one per delivery: a hundred deliveries
// stamped at once share it, it fires at their deadline and takes them all back, and the
// redeliveries share the one timer armed after that.
func TestOneAckTimerPerChannel(t *testing.T) {
	clk := &fakeClock{now: 1_000_000}
	srv, ch := clockBroker(t, clk)
	if _, err := ch.QueueDeclare("jobs", false, false, false, false, amqp.Table{"x-delivery-timeout": int32(1000)}); err != nil {
		t.Fatal(err)
	}
	publishN(t, ch, "jobs", 100)
	ds, err := ch.Consume("jobs", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range recvN(t, ds, 100) {
		if d.Redelivered {
			t.Fatalf("delivery %q redelivered before any timeout", d.Body)
		}
	}
	if n := clk.armedCount(); n != 1 {
		t.Errorf("%d timers armed for 100 deliveries, want 1", n)
	}
	clk.advance(999)
	if n := srv.Stats().DeliveryTimeouts; n != 0 {
		t.Fatalf("%d deliveries timed out before their deadline", n)
	}
	clk.advance(1)
	for _, d := range recvN(t, ds, 100) {
		if !d.Redelivered {
			t.Fatalf("delivery %q after the timeout is not redelivered", d.Body)
		}
	}
	if n := srv.Stats().DeliveryTimeouts; n != 100 {
		t.Errorf("DeliveryTimeouts = %d, want 100", n)
	}
	if armed, pending := clk.armedCount(), clk.pending(); armed != 2 || pending != 1 {
		t.Errorf("%d timers armed, %d pending after the redeliveries; want 2 and 1", armed, pending)
	}
}

// A settlement of a tag a delivery timeout took back is ignored and counted; one of a tag never
// delivered, or settled twice, is still refused.
func TestSettleLate(t *testing.T) {
	_, ch, _ := answerConn()
	fill(&ch.unacked, 6)
	for _, tag := range []uint64{2, 4} {
		ch.unacked.take(tag, false, nil)
		ch.acks.late = insertTag(ch.acks.late, tag)
	}
	for _, tc := range []struct {
		tag      uint64
		multiple bool
		ok       bool
		took     string
		late     int // late tags left
	}{
		{2, false, true, "", 1},    // late: ignored
		{2, false, false, "", 1},   // twice: refused
		{9, false, false, "", 1},   // never delivered: refused
		{4, true, true, "1,3,", 0}, // late, multiple: the outstanding ones before it too
		{6, false, true, "6,", 0},
	} {
		recs, ok := ch.unacked.take(tc.tag, tc.multiple, nil)
		recs, ok = ch.settleLate(tc.tag, tc.multiple, ok, recs)
		if ok != tc.ok || tags(recs) != tc.took || len(ch.acks.late) != tc.late {
			t.Errorf("settle %d multiple=%v: ok %v took %q late left %d; want %v %q %d",
				tc.tag, tc.multiple, ok, tags(recs), len(ch.acks.late), tc.ok, tc.took, tc.late)
		}
	}
	if n := ch.conn.srv.counters.lateAcks.Load(); n != 2 {
		t.Errorf("late acks counted %d, want 2", n)
	}
}

// The late tags a channel remembers are bounded.
func TestLateTagsBounded(t *testing.T) {
	var tags []uint64
	for tag := uint64(1); tag <= lateMax+10; tag++ {
		tags = insertTag(tags, tag)
	}
	if len(tags) != lateMax || tags[0] != 11 {
		t.Errorf("kept %d tags from %d, want %d from 11", len(tags), tags[0], lateMax)
	}
}

// A timer replaced by an earlier one whose callback could not be stopped in time does nothing
// when it runs: the channel keeps the timer it armed last.
func TestSupersededAckTimerDoesNothing(t *testing.T) {
	_, ch, _ := answerConn()
	clk := &fakeClock{now: 1000}
	ch.conn.srv.cfg.Clock = clk
	ch.mu.Lock()
	ch.armLocked(2000)
	ch.armLocked(1500) // stops the first; its callback may be running already
	ch.mu.Unlock()
	ch.checkAckTimeouts(1) // the first timer's callback, late
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.acks.timer == nil || ch.acks.at != 1500 {
		t.Errorf("after the superseded callback: timer %v at %d, want the one at 1500", ch.acks.timer, ch.acks.at)
	}
}
