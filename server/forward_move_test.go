package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/vhost"
)

// TestForwardQueueMovedReattachesConsumers drives the QueueMoved contract the quorum wiring
// uses, with a fake move: a queue held by n1 moves to n2 (SetRemote on every node; n1 drops
// its core with its consumers, as a leader that steps down does; then QueueMoved). A
// consumer on n3 (forwarded to n1) and one on n2 (forwarded to n1, then local) keep
// consuming without a new basic.consume: messages published after the move reach them, each
// once. The deliveries they had not acked before the move are forgotten:
// acking those tags neither fails nor closes the channel (RabbitMQ would close it with 406
// for an unknown tag).
func TestForwardQueueMovedReattachesConsumers(t *testing.T) {
	nodes := startForwardCluster(t)
	queueOn(t, nodes, 0, "mq")

	type sub struct {
		ch     *amqp.Channel
		ds     <-chan amqp.Delivery
		closed chan *amqp.Error
	}
	var subs []sub
	for _, n := range nodes[1:] {
		_, ch := n.dial(t)
		if err := ch.Qos(3, 0, false); err != nil {
			t.Fatal(err)
		}
		ds, err := ch.Consume("mq", "", false, false, false, false, nil)
		if err != nil {
			t.Fatalf("consume through %s: %v", n.name, err)
		}
		subs = append(subs, sub{ch: ch, ds: ds, closed: ch.NotifyClose(make(chan *amqp.Error, 1))})
	}
	_, pub := nodes[0].dial(t)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	publish := func(bodies ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, b := range bodies {
			c, err := pub.PublishWithDeferredConfirm("", "mq", false, false, amqp.Publishing{Body: []byte(b)})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := c.WaitContext(ctx); !ok || err != nil {
				t.Fatalf("publish %s: ack %v, %v", b, ok, err)
			}
		}
	}
	publish("b1", "b2", "b3", "b4")
	// Each consumer holds what it got, unacked.
	var stale [][]amqp.Delivery
	got := 0
	stale = make([][]amqp.Delivery, len(subs))
	for got < 4 {
		select {
		case d := <-subs[0].ds:
			stale[0] = append(stale[0], d)
		case d := <-subs[1].ds:
			stale[1] = append(stale[1], d)
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d deliveries before the move", got)
		}
		got++
	}

	// The move: n2 holds the queue now.
	for _, n := range nodes {
		q, err := n.srv.vhost("/").QueueFor(nil, "mq")
		if err != nil {
			t.Fatal(err)
		}
		if n == nodes[1] {
			q.SetRemote("")
		} else {
			q.SetRemote(nodes[1].name)
		}
	}
	for i, n := range nodes {
		v := n.srv.vhost("/")
		q, _ := v.QueueFor(nil, "mq")
		if i == 0 {
			// The old holder drops its core with every consumer at once, as a quorum queue's
			// leader does when it steps down (clusterquorum.go's follow): a consumer still
			// attached there must not be handed the deliveries another one left.
			detached, _ := q.SetCore(closedCore(q.Name())).Delete()
			n.srv.quorumMoved(v, q, detached)
			continue
		}
		n.srv.QueueMoved(v, q)
	}
	newHolder, _ := nodes[1].srv.vhost("/").QueueFor(nil, "mq")
	eventually(t, "both consumers on the new holder", func() error {
		if c := newHolder.Core().Stats().Consumers; c != 2 {
			return fmt.Errorf("%d consumers", c)
		}
		return nil
	})

	// Acks of the deliveries from before the move are ignored, not errors.
	for i := range subs {
		for _, d := range stale[i] {
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		}
	}
	after := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	publish(after...) // through n1, forwarded to n2 now
	var bodies []string
	per := make([]int, len(subs))
	for len(bodies) < len(after) {
		select {
		case d := <-subs[0].ds:
			bodies, per[0] = append(bodies, string(d.Body)), per[0]+1
			_ = d.Ack(false)
		case d := <-subs[1].ds:
			bodies, per[1] = append(bodies, string(d.Body)), per[1]+1
			_ = d.Ack(false)
		case <-time.After(30 * time.Second):
			t.Fatalf("after the move only %v arrived", bodies)
		}
	}
	slices.Sort(bodies)
	if !slices.Equal(bodies, after) {
		t.Fatalf("after the move the consumers got %v, want %v once each", bodies, after)
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("deliveries per consumer %v: one consumer was not re-attached", per)
	}
	eventually(t, "the new holder's deliveries settled", func() error {
		if st := newHolder.Core().Stats(); st.Ready != 0 || st.Unacked != 0 {
			return fmt.Errorf("ready %d unacked %d", st.Ready, st.Unacked)
		}
		return nil
	})
	for i, s := range subs {
		select {
		case err := <-s.closed:
			t.Fatalf("channel on %s closed: %v", nodes[i+1].name, err)
		default:
		}
		if _, err := s.ch.QueueDeclarePassive("mq", true, false, false, false, nil); err != nil {
			t.Fatalf("channel on %s after the stale acks: %v", nodes[i+1].name, err)
		}
	}
}

// TestForwardNoPingPongWhileNodesDisagree: for a moment two nodes may each take the other
// for a queue's holder (a move being applied). A publish through one of them is then
// nacked by the other, not passed back and forth.
func TestForwardNoPingPongWhileNodesDisagree(t *testing.T) {
	nodes := startForwardCluster(t)
	queueOn(t, nodes, 0, "pp")
	q, err := nodes[0].srv.vhost("/").QueueFor(nil, "pp")
	if err != nil {
		t.Fatal(err)
	}
	q.SetRemote(nodes[1].name) // n1 thinks n2 holds it; n2 still thinks n1 does
	_, pub := nodes[1].dial(t)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	c, err := pub.PublishWithDeferredConfirm("", "pp", false, false, amqp.Publishing{Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ok, err := c.WaitContext(ctx); ok || err != nil {
		t.Fatalf("publish while n1 and n2 disagree about the holder: ack %v, %v; want a nack", ok, err)
	}
}

// TestForwardAckTimeoutsApply: the acknowledgement timeouts of a queue held by n1 apply to
// its consumer on n3: past x-delivery-timeout an unacked delivery comes again (redelivered)
// and the late ack of its first tag is ignored; past x-consumer-timeout the channel is
// closed with RabbitMQ's 406.
func TestForwardAckTimeoutsApply(t *testing.T) {
	nodes := startForwardCluster(t)
	for _, a := range []struct{ queue, key string }{{"dt", "x-delivery-timeout"}, {"ct", "x-consumer-timeout"}} {
		args, err := amqpwire.AppendField(nil, a.key, int64(300))
		if err != nil {
			t.Fatal(err)
		}
		queueWith(t, nodes, 0, vhost.QueueDecl{Name: a.queue, Durable: true, Args: args})
	}
	_, pub := nodes[1].dial(t)
	for _, q := range []string{"dt", "ct"} {
		if err := pub.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte(q)}); err != nil {
			t.Fatal(err)
		}
	}

	_, ch := nodes[2].dial(t)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	ds, err := ch.Consume("dt", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := recv(t, ds)
	again := recv(t, ds) // after the delivery timeout
	if string(again.Body) != "dt" || !again.Redelivered || again.DeliveryTag == first.DeliveryTag {
		t.Fatalf("after the delivery timeout: %q redelivered=%v tag %d (first %d)", again.Body, again.Redelivered, again.DeliveryTag, first.DeliveryTag)
	}
	if err := first.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := again.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("dt", true, false, false, false, nil); err != nil {
		t.Fatalf("the channel after the late ack: %v", err)
	}

	if _, err := ch.Consume("ct", "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.PreconditionFailed || !strings.Contains(e.Reason, "delivery acknowledgement on channel") {
			t.Fatalf("channel closed with %v, want 406 delivery acknowledgement ... timed out", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer timeout of a queue on another node did not close the channel")
	}
}

// TestForwardSlowConsumerHoldsMessagesOnHolder: a no-ack consumer on n3 whose client does
// not read: once n3's output for it is full, n3 stops granting the holder credit, so the
// messages stay on n1 (not in n3's memory); when the client reads again, every message
// arrives, once.
func TestForwardSlowConsumerHoldsMessagesOnHolder(t *testing.T) {
	nodes := startForwardCluster(t)
	queueOn(t, nodes, 0, "slow")
	holder, err := nodes[0].srv.vhost("/").QueueFor(nil, "slow")
	if err != nil {
		t.Fatal(err)
	}
	_, pub := nodes[0].dial(t)
	const n = 600
	body := make([]byte, 64<<10)
	for i := range n {
		if err := pub.PublishWithContext(context.Background(), "", "slow", false, false,
			amqp.Publishing{Body: append(fmt.Appendf(nil, "%04d", i), body...)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the messages on the holder", func() error {
		if r := holder.Core().Stats().Ready; r != n {
			return fmt.Errorf("%d ready", r)
		}
		return nil
	})
	// A raw no-ack consumer on n3 that reads up to consume-ok and then nothing for a while.
	raw, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(nodes[2].url, "amqp://guest:guest@"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var hs bytes.Buffer
	fw := amqpwire.NewFrameWriter(&hs)
	writeHandshake(&hs, fw, 131072)
	fw.WriteMethod(1, &amqpwire.BasicConsume{Queue: "slow", ConsumerTag: "slow", NoAck: true})
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(hs.Bytes()); err != nil {
		t.Fatal(err)
	}
	fr := amqpwire.NewFrameReader(raw, 131072)
	_ = raw.SetReadDeadline(time.Now().Add(60 * time.Second))
	deliveries := 0
	next := func() {
		t.Helper()
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("raw consumer after %d deliveries: %v", deliveries, err)
		}
		if f.Type != amqpwire.FrameMethod {
			return
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		switch m.(type) {
		case *amqpwire.BasicDeliver:
			deliveries++
		case *amqpwire.ChannelClose, *amqpwire.ConnectionClose:
			t.Fatalf("raw consumer: %#v", m)
		}
	}
	for deliveries == 0 {
		next()
	}
	// Once n3's output for the client is full, n3 stops granting the holder credit: the
	// holder's count stops falling, with messages left. (Counting n3's stalled attachments
	// instead misses them while its writer is blocked on the client's socket.)
	last, since := -1, time.Now()
	eventually(t, "the holder's count to settle", func() error {
		r := holder.Core().Stats().Ready
		if r == 0 {
			t.Fatal("the holder sent every message to n3 although n3's client was not reading")
		}
		if r != last {
			last, since = r, time.Now()
		}
		if time.Since(since) < 250*time.Millisecond {
			return fmt.Errorf("%d ready, still falling", r)
		}
		return nil
	})
	// A window, not an event: had n3 kept granting, the holder would be emptied meanwhile.
	time.Sleep(500 * time.Millisecond)
	if r := holder.Core().Stats().Ready; r == 0 {
		t.Fatal("the holder sent every message to n3 although n3's client was not reading")
	}
	for deliveries < n {
		next()
	}
	eventually(t, "the holder emptied", func() error {
		if r := holder.Core().Stats().Ready; r != 0 {
			return fmt.Errorf("%d ready", r)
		}
		return nil
	})
}
