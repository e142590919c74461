package queue

import (
	"runtime"
	"testing"
	"time"
)

// spilledQueue returns a queue with a window of 8 messages, one consumer with no credit and
// 20 ready messages, so 12 wait on disk.
func spilledQueue(t *testing.T) (*Queue, *fakeConsumer, *fakeJournal, *fakeClock) {
	t.Helper()
	j := newFakeJournal()
	clk := newFakeClock()
	q := New("q", Options{Journal: j, Window: Window{Count: 8, Bytes: 1 << 20}, Clock: clk})
	c := &fakeConsumer{name: "c"}
	if err := q.AddConsumer(c, ConsumerOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		publish(q, "m")
	}
	j.commit()
	if !q.backlog.Spilled() {
		t.Fatal("20 messages in a window of 8 did not spill")
	}
	return q, c, j, clk
}

// deliver lets the consumer take n more messages, answering the reads back from disk.
func deliver(q *Queue, c *fakeConsumer, j *fakeJournal, n int) {
	c.credit += n
	q.Kick()
	j.settle()
}

func TestCongestedOnlyWhileConsumersTakeMessages(t *testing.T) {
	q, c, j, clk := spilledQueue(t)
	if q.Congested() {
		t.Fatal("congested before any delivery: the consumer is not taking messages")
	}
	deliver(q, c, j, 1)
	if !q.Congested() {
		t.Fatal("not congested: spilled, and the consumer just took a message")
	}
	// A consumer that stops taking messages (stalled, or slow at its prefetch limit) does not
	// hold publishers back: pacing them by its deliveries would stop them.
	clk.advance(flowActive)
	if q.Congested() {
		t.Fatal("still congested although nothing was delivered for longer than flowActive")
	}
	deliver(q, c, j, 1)
	if !q.Congested() {
		t.Fatal("not congested again after a delivery")
	}
	if n, ok := q.RemoveConsumer(c); !ok || n != 0 {
		t.Fatalf("RemoveConsumer = %d, %v", n, ok)
	}
	if q.Congested() {
		t.Fatal("congested without consumers: a queue with no consumers is a buffer")
	}
}

func TestQueueWithoutConsumersNeverCongested(t *testing.T) {
	j := newFakeJournal()
	q := New("q", Options{Journal: j, Window: Window{Count: 8, Bytes: 1 << 20}})
	for range 100 {
		publish(q, "m")
	}
	j.commit()
	if !q.backlog.Spilled() || q.Congested() {
		t.Fatalf("spilled %v, congested %v; want spilled and not congested", q.backlog.Spilled(), q.Congested())
	}
	if waited := q.AwaitCredit(time.NewTimer(time.Hour), time.Hour); waited {
		t.Fatal("a publisher waited on a queue without consumers")
	}
}

// Every second delivery grants a unit of credit, so paced publishers run at half the rate of
// the consumers and the backlog drains back into memory; congestion ends at a
// quarter of the window, not as soon as nothing waits on disk.
func TestCreditAndHysteresis(t *testing.T) {
	q, c, j, _ := spilledQueue(t)
	deliver(q, c, j, 8)
	if got := q.flow.credit.Load(); got != 4 {
		t.Fatalf("credit after 8 deliveries = %d, want 4", got)
	}
	timer := time.NewTimer(time.Hour)
	for i := range 4 {
		if q.AwaitCredit(timer, time.Hour) {
			t.Fatalf("publish %d waited with credit banked", i)
		}
	}
	// No credit left: the next publish waits for a delivery (bounded by the limit, here
	// none, so the test need not wait for it).
	if !q.AwaitCredit(timer, 0) {
		t.Fatal("publish without credit did not wait")
	}
	// 12 ready, 4 of them still spilled: deliver until nothing is on disk. Congestion holds
	// while more than 8/4 = 2 are ready.
	deliver(q, c, j, 9)
	if q.backlog.Spilled() || q.Stats().Ready != 3 {
		t.Fatalf("spilled %v with %d ready, want nothing on disk and 3 ready", q.backlog.Spilled(), q.Stats().Ready)
	}
	if !q.Congested() {
		t.Fatal("congestion ended with 3 ready in a window of 8; it should hold down to 2")
	}
	deliver(q, c, j, 1)
	if q.Congested() {
		t.Fatal("still congested with 2 ready in a window of 8")
	}
	if got := q.flow.credit.Load(); got != 0 {
		t.Fatalf("credit %d kept after congestion ended", got)
	}
}

// A publisher waiting for credit is released by the next delivery, and at once when the
// congestion ends, not at its time limit.
func TestAwaitCreditWokenByDeliveryAndByEnd(t *testing.T) {
	for _, end := range []struct {
		name string
		fn   func(q *Queue, c *fakeConsumer, j *fakeJournal)
	}{
		{"delivery", func(q *Queue, c *fakeConsumer, j *fakeJournal) { deliver(q, c, j, 4) }},
		{"consumer gone", func(q *Queue, c *fakeConsumer, _ *fakeJournal) { q.RemoveConsumer(c) }},
	} {
		q, c, j, _ := spilledQueue(t)
		deliver(q, c, j, 1) // congested, one unit of credit
		if q.AwaitCredit(time.NewTimer(time.Hour), time.Hour) {
			t.Fatal("waited with a unit of credit banked")
		}
		done := make(chan bool, 1)
		go func() { done <- q.AwaitCredit(time.NewTimer(time.Hour), time.Minute) }()
		for q.flow.waiters.Load() == 0 {
			runtime.Gosched() // until the publisher waits
		}
		end.fn(q, c, j)
		if waited := <-done; !waited {
			t.Errorf("%s: AwaitCredit did not report the wait", end.name)
		}
	}
}
