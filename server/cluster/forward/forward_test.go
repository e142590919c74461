package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
)

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func channelError(t *testing.T, err error, code uint16, text string) {
	t.Helper()
	var ce *amqpwire.ChannelError
	if !errors.As(err, &ce) || ce.Code != code || ce.Text != text {
		t.Fatalf("error = %v, want channel error %d %q", err, code, text)
	}
}

// TestPublishesArePipelinedAndAnsweredOutOfOrder: B sends many confirmed publishes without
// waiting; A stores them in the order sent and answers them in reverse, some nacked; each
// publisher on B gets its own message's answer.
func TestPublishesArePipelinedAndAnsweredOutOfOrder(t *testing.T) {
	local := newFakeLocal("q")
	local.hold = true
	p := newPair(t, local)
	const n = 200
	results := make([]chan error, n)
	for i := range n {
		results[i] = make(chan error, 1)
		p.client.Publish(p.addr(), "/", "q", msg(fmt.Sprint(i)), true, func(err error) { results[i] <- err })
	}
	local.waitFor(t, "every publish at A", func() bool {
		local.mu.Lock()
		defer local.mu.Unlock()
		return len(local.held) == n
	})
	ready, _, _, _, _ := local.queues["q"].snapshot()
	for i, b := range ready {
		if b != fmt.Sprint(i) {
			t.Fatalf("A stored %v, want 0..%d in order", ready, n-1)
		}
	}
	// Each answer comes with settle work (releasing held entries), which must run before B
	// sees the answer.
	var settled [n]atomic.Bool
	for i := n - 1; i >= 0; i-- { // the last first
		h := local.held[i]
		settle := func() { settled[i].Store(true) }
		if i%3 == 0 {
			h.done(fmt.Errorf("disk full storing %s", h.m.Body), settle)
		} else {
			h.done(nil, settle)
		}
	}
	for i := range n {
		select {
		case err := <-results[i]:
			if !settled[i].Load() {
				t.Fatalf("publish %d answered before its settle work ran", i)
			}
			var re *RemoteError
			switch {
			case i%3 == 0 && (!errors.As(err, &re) || re.Text != fmt.Sprintf("disk full storing %d", i)):
				t.Fatalf("publish %d: %v, want the nack for its own message", i, err)
			case i%3 != 0 && err != nil:
				t.Fatalf("publish %d: %v, want ok", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("publish %d got no answer", i)
		}
	}
	// A queue deleted meanwhile: RabbitMQ's 404.
	done := make(chan error, 1)
	p.client.Publish(p.addr(), "/", "gone", msg("x"), true, func(err error) { done <- err })
	channelError(t, <-done, amqpwire.CodeNotFound, "NOT_FOUND - no queue 'gone' in vhost '/'")
}

// TestConsumeHonoursPrefetchAndSettles: deliveries come in queue order; A sends no more
// than prefetch unacked; ack (multiple), nack with requeue (redelivered, counted) and nack
// without requeue reach A's queue.
func TestConsumeHonoursPrefetchAndSettles(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put(nums("m", 10)...)
	p := newPair(t, local)
	rec := newRecorder()
	sub, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{Tag: "c1", Prefetch: 3}, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.waitN(t, 3)
	// A stats round trip: every delivery A made before answering is already here.
	st, err := p.client.Stats(ctx30(t), p.addr(), "/", "q")
	if err != nil {
		t.Fatal(err)
	}
	got := rec.deliveries()
	if len(got) != 3 || bodies(got) != "m1,m2,m3" || st.Messages != 7 || st.Consumers != 1 || st.Unacked != 3 {
		t.Fatalf("with prefetch 3: B got %q, A has %d ready, %d unacked and %d consumers; want m1..m3, 7, 3, 1",
			bodies(got), st.Messages, st.Unacked, st.Consumers)
	}
	if err := sub.Ack(got[1].ID, true); err != nil { // m1, m2
		t.Fatal(err)
	}
	got = rec.waitN(t, 5)
	if bodies(got[3:]) != "m4,m5" {
		t.Fatalf("after acking two: %q, want m4,m5", bodies(got[3:]))
	}
	if err := sub.Nack(got[2].ID, false, true); err != nil { // m3 back, redelivered
		t.Fatal(err)
	}
	got = rec.waitN(t, 6)
	if d := got[5]; string(d.Body) != "m3" || !d.Redelivered || d.DeliveryCount != 1 {
		t.Fatalf("after a requeue: %q redelivered=%v count=%d, want m3 redelivered once", d.Body, d.Redelivered, d.DeliveryCount)
	}
	if err := sub.Reject(got[3].ID, false); err != nil { // m4 dead-lettered
		t.Fatal(err)
	}
	for i := 6; i <= 10; i++ {
		got = rec.waitN(t, i+1)
		if err := sub.Ack(got[len(got)-1].ID, true); err != nil {
			t.Fatal(err)
		}
	}
	local.waitFor(t, "every message settled", func() bool {
		_, _, acked, discarded, _ := q.snapshot()
		return len(acked)+len(discarded) == 10
	})
	_, _, acked, discarded, _ := q.snapshot()
	slices.Sort(acked)
	if strings.Join(discarded, ",") != "m4" || strings.Join(acked, ",") != "m1,m10,m2,m3,m5,m6,m7,m8,m9" {
		t.Fatalf("A acked %v and discarded %v", acked, discarded)
	}
}

// TestStreamBreakRequeuesAndEndsSubscription: when the stream between the nodes breaks, A
// removes the forwarded consumer and requeues its unacked messages; B's subscription ends
// with ErrStreamBroken, and a confirm still in flight fails with it.
func TestStreamBreakRequeuesAndEndsSubscription(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put(nums("m", 6)...)
	p := newPair(t, local)
	rec := newRecorder()
	sub, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{Tag: "c1", Prefetch: 4}, rec)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitN(t, 4)
	if err := sub.Ack(got[0].ID, false); err != nil {
		t.Fatal(err)
	}
	rec.waitN(t, 5)
	local.mu.Lock()
	local.hold = true
	local.mu.Unlock()
	confirm := make(chan error, 1)
	p.client.Publish(p.addr(), "/", "q", msg("late"), true, func(err error) { confirm <- err })
	local.waitFor(t, "the held publish", func() bool {
		local.mu.Lock()
		defer local.mu.Unlock()
		return len(local.held) == 1
	})

	_ = p.b.Close() // node B's transport goes: the stream breaks

	if err := rec.waitEnded(t); !errors.Is(err, ErrStreamBroken) {
		t.Fatalf("subscription ended with %v, want ErrStreamBroken", err)
	}
	if err := <-confirm; !errors.Is(err, ErrStreamBroken) {
		t.Fatalf("confirm in flight: %v, want ErrStreamBroken", err)
	}
	local.waitFor(t, "A to requeue and drop the consumer", func() bool {
		_, consumers, _, _, requeued := q.snapshot()
		return consumers == 0 && requeued == 4
	})
	ready, _, acked, _, _ := q.snapshot()
	if strings.Join(ready, ",") != "m2,m3,m4,m5,m6,late" || strings.Join(acked, ",") != "m1" {
		t.Fatalf("after the break A has ready %v, acked %v; want m2..m6,late and m1", ready, acked)
	}
	// A late answer on a dead stream goes nowhere, but its settle work still runs.
	settled := make(chan struct{})
	local.held[0].done(nil, func() { close(settled) })
	select {
	case <-settled:
	case <-time.After(30 * time.Second):
		t.Fatal("the settle work of an answer to a broken stream never ran")
	}
}

// TestCancelFromAReachesB: a queue deleted on A ends B's subscription with RabbitMQ's 404,
// which the AMQP layer turns into basic.cancel.
func TestCancelFromAReachesB(t *testing.T) {
	local := newFakeLocal("q")
	p := newPair(t, local)
	rec := newRecorder()
	if _, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{Tag: "c1"}, rec); err != nil {
		t.Fatal(err)
	}
	local.deleteQueue("q")
	channelError(t, rec.waitEnded(t), amqpwire.CodeNotFound, "NOT_FOUND - no queue 'q' in vhost '/'")
}

// TestCancelFromBThenClose: after basic.cancel A delivers no more but what was delivered
// can still be acked; closing the subscription (the channel closed) requeues the rest.
func TestCancelFromBThenClose(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put(nums("m", 3)...)
	p := newPair(t, local)
	rec := newRecorder()
	sub, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{Tag: "c1", Prefetch: 2}, rec)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitN(t, 2)
	if err := sub.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := rec.waitEnded(t); err != nil {
		t.Fatalf("cancel ended the subscription with %v", err)
	}
	if err := sub.Ack(got[0].ID, false); err != nil {
		t.Fatal(err)
	}
	local.waitFor(t, "the ack after cancel", func() bool {
		_, consumers, acked, _, _ := q.snapshot()
		return consumers == 0 && len(acked) == 1
	})
	if ready, _, _, _, _ := q.snapshot(); strings.Join(ready, ",") != "m3" {
		t.Fatalf("a cancelled consumer's acked credit was used: ready %v, want m3", ready)
	}
	sub.Close()
	local.waitFor(t, "the requeue on close", func() bool {
		ready, _, _, _, _ := q.snapshot()
		return strings.Join(ready, ",") == "m2,m3"
	})
}

// TestConsumeRefusals: the errors A's queues give come back with their codes and texts.
func TestConsumeRefusals(t *testing.T) {
	local := newFakeLocal("q")
	p := newPair(t, local)
	_, err := p.client.Consume(ctx30(t), p.addr(), "/", "nope", ConsumeOptions{}, newRecorder())
	channelError(t, err, amqpwire.CodeNotFound, "NOT_FOUND - no queue 'nope' in vhost '/'")
	if _, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{Exclusive: true}, newRecorder()); err != nil {
		t.Fatal(err)
	}
	_, err = p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{}, newRecorder())
	channelError(t, err, amqpwire.CodeAccessRefused, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use")
}

// TestCreditLimitsNoAckDeliveries: a no-ack subscription with credit gets that many
// deliveries, then more only as B grants credit.
func TestCreditLimitsNoAckDeliveries(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put(nums("m", 5)...)
	p := newPair(t, local)
	rec := newRecorder()
	sub, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{NoAck: true, Credit: 2}, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.waitN(t, 2)
	if st, err := p.client.Stats(ctx30(t), p.addr(), "/", "q"); err != nil || st.Messages != 3 || len(rec.deliveries()) != 2 {
		t.Fatalf("with credit 2: B got %d, A has %v ready (%v)", len(rec.deliveries()), st.Messages, err)
	}
	if err := sub.Credit(3); err != nil {
		t.Fatal(err)
	}
	if got := rec.waitN(t, 5); bodies(got) != "m1,m2,m3,m4,m5" {
		t.Fatalf("got %q", bodies(got))
	}
}

// TestGetPurgeStatsNode: basic.get with and without ack, purge, a passive declare's counts
// and the node's report of itself, forwarded.
func TestGetPurgeStatsNode(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put(nums("m", 4)...)
	p := newPair(t, local)
	ctx := ctx30(t)
	d, left, err := p.client.Get(ctx, p.addr(), "/", "q", false)
	if err != nil || d == nil || string(d.Body) != "m1" || left != 3 {
		t.Fatalf("get = %v, %d, %v; want m1 with 3 left", d, left, err)
	}
	if err := p.client.SettleGot(d, Requeue); err != nil {
		t.Fatal(err)
	}
	d, _, err = p.client.Get(ctx, p.addr(), "/", "q", false)
	if err != nil || d == nil || string(d.Body) != "m1" || !d.Redelivered {
		t.Fatalf("get after a requeue = %v, %v; want m1 redelivered", d, err)
	}
	if err := p.client.SettleGot(d, Ack); err != nil {
		t.Fatal(err)
	}
	if d, _, err = p.client.Get(ctx, p.addr(), "/", "q", true); err != nil || string(d.Body) != "m2" {
		t.Fatalf("no-ack get = %v, %v", d, err)
	}
	if n, err := p.client.Purge(ctx, p.addr(), "/", "q"); err != nil || n != 2 {
		t.Fatalf("purge = %d, %v; want 2", n, err)
	}
	if d, left, err := p.client.Get(ctx, p.addr(), "/", "q", false); err != nil || d != nil || left != 0 {
		t.Fatalf("get on an empty queue = %v, %d, %v", d, left, err)
	}
	if report, err := p.client.Node(ctx, p.addr()); err != nil || string(report) != `{"queues":1}` {
		t.Fatalf("node report = %s, %v; want the node's own", report, err)
	}
	_, err = p.client.Stats(ctx, p.addr(), "/", "nope")
	channelError(t, err, amqpwire.CodeNotFound, "NOT_FOUND - no queue 'nope' in vhost '/'")
	_, _, acked, _, _ := q.snapshot()
	if strings.Join(acked, ",") != "m1,m2" {
		t.Fatalf("acked %v, want m1,m2", acked)
	}
}

// TestManyPublishersOneStream: concurrent publishers share one stream; every confirm comes
// back and A stores each publisher's messages in its order.
func TestManyPublishersOneStream(t *testing.T) {
	local := newFakeLocal("q")
	p := newPair(t, local)
	const pubs, each = 4, 300
	var wg sync.WaitGroup
	errs := make(chan error, pubs*each)
	for g := range pubs {
		wg.Go(func() {
			var inner sync.WaitGroup
			for i := range each {
				inner.Add(1)
				p.client.Publish(p.addr(), "/", "q", msg(fmt.Sprintf("%d-%d", g, i)), true, func(err error) {
					if err != nil {
						errs <- err
					}
					inner.Done()
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ready, _, _, _, _ := local.queues["q"].snapshot()
	next := make([]int, pubs)
	for _, b := range ready {
		var g, i int
		if _, err := fmt.Sscanf(b, "%d-%d", &g, &i); err != nil || i != next[g] {
			t.Fatalf("A stored %q out of its publisher's order (want %d-%d)", b, g, next[g])
		}
		next[g]++
	}
	if len(ready) != pubs*each {
		t.Fatalf("A stored %d of %d", len(ready), pubs*each)
	}
}

// TestBackloggedStreamResumes: a no-ack consumer of a queue holding far more than the
// stream's output buffer gets every message, in order: A holds deliveries while the
// stream is backlogged and resumes them as it drains.
func TestBackloggedStreamResumes(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	const n = 160 // 160 × 64 KiB = 10 MiB, ten times deliverHighWater
	pad := strings.Repeat("x", 64<<10)
	for i := range n {
		q.put(fmt.Sprintf("%04d%s", i, pad))
	}
	p := newPair(t, local)
	rec := newRecorder()
	if _, err := p.client.Consume(ctx30(t), p.addr(), "/", "q", ConsumeOptions{NoAck: true}, rec); err != nil {
		t.Fatal(err)
	}
	got := rec.waitN(t, n)
	for i, d := range got {
		if string(d.Body[:4]) != fmt.Sprintf("%04d", i) || len(d.Body) != 4+len(pad) {
			t.Fatalf("delivery %d is message %q (%d bytes)", i, d.Body[:4], len(d.Body))
		}
	}
}

// countingDialer counts the dials it passes on.
type countingDialer struct {
	Dialer
	n atomic.Int32
}

func (d *countingDialer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d.n.Add(1)
	return d.Dialer.Dial(address, timeout)
}

// TestUnreachableNodeFailsFast: requests to a node that cannot be reached fail with the
// dial's error, and those right after it fail the same way without dialing again (a burst
// of publishes to a dead node does not queue up behind one dial each).
func TestUnreachableNodeFailsFast(t *testing.T) {
	b := newMux(t, "b")
	t.Cleanup(func() { _ = b.Close() })
	lb, err := b.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	d := &countingDialer{Dialer: lb}
	c := NewClient(d, zerolog.Nop(), Options{})
	c.redial = time.Hour // however slow the machine, the five publishes are within it
	defer c.Close()
	var errs []error
	for range 5 {
		done := make(chan error, 1)
		c.Publish(dead, "/", "q", msg("x"), true, func(err error) { done <- err })
		errs = append(errs, <-done)
	}
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), dead) {
			t.Fatalf("publish %d to a dead node: %v, want an error naming it", i, err)
		}
	}
	if n := d.n.Load(); n != 1 {
		t.Fatalf("%d dials for 5 publishes in a row, want 1", n)
	}
	if _, err := c.Node(context.Background(), dead); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("node report of a dead node: %v, want ErrUnreachable", err)
	}
}

// TestMalformedFrameClosesOnlyItsStream: a peer sending garbage gets its stream closed; the
// node keeps serving others.
func TestMalformedFrameClosesOnlyItsStream(t *testing.T) {
	local := newFakeLocal("q")
	p := newPair(t, local)
	other := newMux(t, "c")
	t.Cleanup(func() { _ = other.Close() })
	lc, err := other.Layer(Group)
	if err != nil {
		t.Fatal(err)
	}
	st, err := lc.Dial(raft.ServerAddress(p.addr()), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte{0, 0, 0, 9, 99, 0, 0, 0, 0, 0, 0, 0, 1}); err != nil { // type 99
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := st.Read(make([]byte, 1)); err == nil {
		t.Fatal("the stream that sent a malformed frame stayed open")
	}
	if _, err := p.client.Stats(ctx30(t), p.addr(), "/", "q"); err != nil {
		t.Fatalf("another stream after a malformed one: %v", err)
	}
}

// TestAbandonedGetIsRequeued: a basic.get whose caller stopped waiting before the answer
// came does not break the stream, and the message it took goes back to the queue.
func TestAbandonedGetIsRequeued(t *testing.T) {
	local := newFakeLocal("q")
	q := local.queues["q"]
	q.put("m1")
	p := newPair(t, local)
	if _, err := p.client.Stats(ctx30(t), p.addr(), "/", "q"); err != nil {
		t.Fatal(err)
	}
	stream := func() *clientConn {
		p.client.mu.Lock()
		defer p.client.mu.Unlock()
		return p.client.conns[p.addr()]
	}
	first := stream()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the caller has given up before the answer can come
	if _, _, err := p.client.Get(ctx, p.addr(), "/", "q", false); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled context: %v", err)
	}
	local.waitFor(t, "m1 back in the queue", func() bool {
		ready, _, _, _, requeued := q.snapshot()
		return len(ready) == 1 && requeued == 1
	})
	d, _, err := p.client.Get(ctx30(t), p.addr(), "/", "q", true)
	if err != nil || d == nil || string(d.Body) != "m1" || !d.Redelivered {
		t.Fatalf("get after the abandoned one: %v, %v; want m1 redelivered", d, err)
	}
	if stream() != first {
		t.Fatal("the late answer broke the stream")
	}
}
