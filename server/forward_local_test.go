package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/cluster/raftmux"
	"github.com/warrenmq/warren/server/vhost"
)

// forwardNodes is node A (this broker, with a store, serving forwarded traffic) and node B
// (a forward.Client), over two raftmux muxes on loopback.
type forwardNodes struct {
	s      *Server
	a, b   *raftmux.Mux
	server *forward.Server
	client *forward.Client
}

func forwardMux(t testing.TB, node string) *raftmux.Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return raftmux.New(raftmux.Config{Listener: ln, Node: node, Secret: []byte("k"), Logger: zerolog.Nop()})
}

func startForwardNodes(t testing.TB, s *Server) *forwardNodes {
	t.Helper()
	n := &forwardNodes{s: s, a: forwardMux(t, "a"), b: forwardMux(t, "b")}
	la, err := n.a.Layer(forward.Group)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := n.b.Layer(forward.Group)
	if err != nil {
		t.Fatal(err)
	}
	n.server = forward.Serve(la, s.ForwardLocal(), zerolog.Nop(), forward.Options{})
	n.client = forward.NewClient(lb, zerolog.Nop(), forward.Options{})
	t.Cleanup(func() {
		n.client.Close()
		_ = n.server.Close()
		_ = n.b.Close()
		_ = n.a.Close()
	})
	return n
}

func (n *forwardNodes) publish(t *testing.T, queue, body string) error {
	t.Helper()
	props := (&amqpwire.Properties{Flags: amqpwire.FlagDeliveryMode, DeliveryMode: 2}).Append(nil)
	done := make(chan error, 1)
	n.client.Publish(n.a.Addr(), "/", queue, &forward.Message{Exchange: "", RoutingKey: queue, Properties: props,
		Body: []byte(body), Persistent: true}, true, func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("no confirm in 30s")
		return nil
	}
}

func fwdCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestForwardedPublishSurvivesRestart: a publish forwarded to a durable queue is confirmed
// and, after a restart of its node, still there; a queue at its x-max-length with
// x-overflow reject-publish nacks, as it does a local publisher; a missing queue is 404.
func TestForwardedPublishSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	if _, err := s.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "q", Durable: true}); err != nil {
		t.Fatal(err)
	}
	args, err := amqpwire.NewTable(map[string]any{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "lim", Args: args}); err != nil {
		t.Fatal(err)
	}
	n := startForwardNodes(t, s)
	if err := n.publish(t, "lim", "first"); err != nil {
		t.Fatal(err)
	}
	var re *forward.RemoteError
	if err := n.publish(t, "lim", "second"); !errors.As(err, &re) {
		t.Fatalf("publish to a full reject-publish queue: %v, want a nack", err)
	}
	for i := range 3 {
		if err := n.publish(t, "q", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	err = n.publish(t, "nope", "x")
	var ce *amqpwire.ChannelError
	if !errors.As(err, &ce) || ce.Code != amqpwire.CodeNotFound || ce.Text != "NOT_FOUND - no queue 'nope' in vhost '/'" {
		t.Fatalf("publish to a missing queue: %v, want 404", err)
	}
	n.client.Close()
	_ = n.server.Close()
	if err := s.cfg.Store.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t, dir)
	got, err := s2.GetAs("guest", "/", "q", 10, GetAck)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0].Body) != "m0" || string(got[2].Body) != "m2" {
		t.Fatalf("after a restart the queue holds %d messages, want the 3 confirmed", len(got))
	}
}

// fwdRecorder keeps a subscription's deliveries.
type fwdRecorder struct {
	mu    sync.Mutex
	got   []*forward.Delivery
	more  chan struct{}
	ended chan error
}

func (r *fwdRecorder) Deliver(d *forward.Delivery) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *fwdRecorder) Ended(err error) { r.ended <- err }

func (r *fwdRecorder) waitN(t *testing.T, n int) []*forward.Delivery {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		got := append([]*forward.Delivery(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("%d deliveries, want %d", len(got), n)
		}
	}
}

// TestForwardedConsumerOnAQueue: a consumer on another node gets the queue's messages in
// order within its prefetch; its acks reach the queue; when the stream breaks the queue
// requeues what it had not acked and drops the consumer; deleting the queue cancels a
// forwarded consumer with RabbitMQ's 404.
func TestForwardedConsumerOnAQueue(t *testing.T) {
	s := reopen(t, t.TempDir())
	if _, err := s.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "q", Durable: true}); err != nil {
		t.Fatal(err)
	}
	n := startForwardNodes(t, s)
	for i := range 5 {
		if err := n.publish(t, "q", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	rec := &fwdRecorder{more: make(chan struct{}, 1), ended: make(chan error, 1)}
	sub, err := n.client.Consume(fwdCtx(t), n.a.Addr(), "/", "q", forward.ConsumeOptions{Tag: "c", Prefetch: 2}, rec)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitN(t, 2)
	st, err := n.client.Stats(fwdCtx(t), n.a.Addr(), "/", "q")
	if now := rec.waitN(t, 0); err != nil || st.Messages != 3 || st.Consumers != 1 || len(now) != 2 {
		t.Fatalf("prefetch 2: %d delivered, stats %+v (%v); want 2, 3 ready, 1 consumer", len(now), st, err)
	}
	if string(got[0].Body) != "m0" || string(got[1].Body) != "m1" {
		t.Fatalf("delivered %q, %q; want m0, m1", got[0].Body, got[1].Body)
	}
	if err := sub.Ack(got[1].ID, true); err != nil {
		t.Fatal(err)
	}
	got = rec.waitN(t, 4)
	if string(got[2].Body) != "m2" || string(got[3].Body) != "m3" {
		t.Fatalf("after the acks: %q, %q; want m2, m3", got[2].Body, got[3].Body)
	}

	q, err := s.vhost("/").QueueFor(nil, "q")
	if err != nil {
		t.Fatal(err)
	}
	// The queue's rates on its own node count the forwarded deliveries and acks (after a
	// round trip: A counts a delivery once it is in the stream's buffer).
	if _, err := n.client.Stats(fwdCtx(t), n.a.Addr(), "/", "q"); err != nil {
		t.Fatal(err)
	}
	if c := q.Core().Counters().Load(); c.Deliver != 4 || c.Ack != 2 || c.Publish != 5 {
		t.Fatalf("queue counters %+v, want 5 published, 4 delivered, 2 acked", c)
	}

	_ = n.b.Close() // node B goes: the stream breaks
	if err := <-rec.ended; !errors.Is(err, forward.ErrStreamBroken) {
		t.Fatalf("subscription ended with %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := q.Core().Stats()
		if st.Consumers == 0 && st.Unacked == 0 && st.Ready == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the break: %+v, want 3 ready (m2, m3 requeued, m4), no consumer", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs, err := s.GetAs("guest", "/", "q", 3, GetAck)
	if err != nil || len(msgs) != 3 || string(msgs[0].Body) != "m2" || !msgs[0].Redelivered {
		t.Fatalf("requeued: %+v, %v; want m2 first, redelivered", msgs, err)
	}
}

// TestForwardedConsumerCancelledByDelete: deleting the queue under a forwarded consumer
// ends it on the other node with RabbitMQ's 404; an exclusive queue takes publishes from
// another node but not its consumers (405).
func TestForwardedConsumerCancelledByDelete(t *testing.T) {
	s := reopen(t, t.TempDir())
	if _, err := s.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	owner := testOwner("conn")
	if _, err := s.vhost("/").DeclareQueue(&owner, vhost.QueueDecl{Name: "mine", Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	n := startForwardNodes(t, s)
	rec := &fwdRecorder{more: make(chan struct{}, 1), ended: make(chan error, 1)}
	if _, err := n.client.Consume(fwdCtx(t), n.a.Addr(), "/", "q", forward.ConsumeOptions{Tag: "c"}, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteQueueAs("guest", "/", "q", false, false); err != nil {
		t.Fatal(err)
	}
	var ce *amqpwire.ChannelError
	if err := <-rec.ended; !errors.As(err, &ce) || ce.Code != amqpwire.CodeNotFound || ce.Text != "NOT_FOUND - no queue 'q' in vhost '/'" {
		t.Fatalf("subscription ended with %v, want 404", err)
	}
	_, err := n.client.Consume(fwdCtx(t), n.a.Addr(), "/", "mine", forward.ConsumeOptions{}, rec)
	if !errors.As(err, &ce) || ce.Code != amqpwire.CodeResourceLocked {
		t.Fatalf("consume on another connection's exclusive queue: %v, want 405", err)
	}
	// Publishing to it is allowed, from another node as from another connection.
	if err := n.publish(t, "mine", "for the owner"); err != nil {
		t.Fatalf("publish to an exclusive queue from another node: %v", err)
	}
	if q, _ := s.vhost("/").QueueFor(&owner, "mine"); q.Core().Stats().Ready != 1 {
		t.Fatal("the exclusive queue did not get the forwarded message")
	}
}

type testOwner string

func (o *testOwner) OwnerName() string { return string(*o) }

// TestForwardedConsumerArguments: basic.consume's arguments cross to the queue's node: a
// forwarded consumer with a higher x-priority gets the messages while it has credit, and a
// bad x-priority is refused with RabbitMQ's 406.
func TestForwardedConsumerArguments(t *testing.T) {
	s := reopen(t, t.TempDir())
	if _, err := s.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	n := startForwardNodes(t, s)
	bad, err := amqpwire.NewTable(map[string]any{"x-priority": "high"})
	if err != nil {
		t.Fatal(err)
	}
	rec := func() *fwdRecorder { return &fwdRecorder{more: make(chan struct{}, 1), ended: make(chan error, 1)} }
	_, err = n.client.Consume(fwdCtx(t), n.a.Addr(), "/", "q", forward.ConsumeOptions{Arguments: bad}, rec())
	var ce *amqpwire.ChannelError
	if !errors.As(err, &ce) || ce.Code != amqpwire.CodePreconditionFailed || !strings.HasPrefix(ce.Text, "PRECONDITION_FAILED - invalid arg 'x-priority'") {
		t.Fatalf("consume with x-priority \"high\": %v, want 406", err)
	}
	high, err := amqpwire.NewTable(map[string]any{"x-priority": int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	low, hi := rec(), rec()
	if _, err := n.client.Consume(fwdCtx(t), n.a.Addr(), "/", "q", forward.ConsumeOptions{Tag: "low", Prefetch: 100}, low); err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.Consume(fwdCtx(t), n.a.Addr(), "/", "q", forward.ConsumeOptions{Tag: "high", Prefetch: 3, Arguments: high}, hi); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := n.publish(t, "q", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	hi.waitN(t, 3)
	low.waitN(t, 2)
	if _, err := n.client.Stats(fwdCtx(t), n.a.Addr(), "/", "q"); err != nil {
		t.Fatal(err)
	}
	hg, lg := hi.waitN(t, 0), low.waitN(t, 0) // what each has now
	if len(hg) != 3 || len(lg) != 2 || string(hg[0].Body) != "m0" {
		t.Fatalf("x-priority 10 with prefetch 3 got %d (first %q), x-priority 0 got %d; want 3 from m0, and 2",
			len(hg), hg[0].Body, len(lg))
	}
}
