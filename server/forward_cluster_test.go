package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/vhost"
)

// fwdNode is a metaNode that forwards and serves AMQP.
type fwdNode struct {
	*metaNode
	url string
}

// startForwardCluster starts three in-process brokers that forward to each other, each
// serving AMQP on a loopback port.
func startForwardCluster(t *testing.T) []*fwdNode {
	t.Helper()
	var out []*fwdNode
	for _, m := range startMetaCluster(t) {
		stop, err := m.srv.StartForwarding(m.n, forward.Options{Heartbeat: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := stop(); err != nil {
				t.Error(err)
			}
		}) // runs before the nodes stop
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = m.srv.Serve(context.Background(), ln) }()
		out = append(out, &fwdNode{metaNode: m, url: "amqp://guest:guest@" + ln.Addr().String() + "/"})
	}
	return out
}

func (n *fwdNode) dial(t *testing.T) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	c, err := amqp.Dial(n.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return c, ch
}

// queueOn declares a durable classic queue on owner and waits until every other node has
// its record, marked as held by owner.
func queueOn(t *testing.T, nodes []*fwdNode, owner int, name string) {
	t.Helper()
	queueWith(t, nodes, owner, vhost.QueueDecl{Name: name, Durable: true})
}

// queueWith is queueOn for the declaration d.
func queueWith(t *testing.T, nodes []*fwdNode, owner int, d vhost.QueueDecl) {
	t.Helper()
	name := d.Name
	if _, err := nodes[owner].srv.DeclareQueueAs("guest", "/", d); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if i == owner {
			continue
		}
		eventually(t, "the queue's record on "+n.name, func() error {
			q, err := n.srv.vhost("/").QueueFor(nil, name)
			if err != nil {
				return err
			}
			if q.Remote() != nodes[owner].name {
				return fmt.Errorf("held by %q", q.Remote())
			}
			return nil
		})
	}
}

func recv(t *testing.T, ds <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatal("the consumer ended")
		}
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery in 30 s")
	}
	return amqp.Delivery{}
}

// TestForwardPublishOnOneNodeConsumeOnAnother: a durable classic queue held by n1; a
// confirmed publisher on n2 gets an ack for every message (and no basic.return for a
// mandatory one), a consumer on n3 gets them all once and in order, a nack with requeue
// through n3 redelivers, basic.get and the declare-ok counts through n3 are the holder's,
// and once everything is acked through n3 the holder's queue is empty.
func TestForwardPublishOnOneNodeConsumeOnAnother(t *testing.T) {
	nodes := startForwardCluster(t)
	queueOn(t, nodes, 0, "fq")

	_, pub := nodes[1].dial(t)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	const n = 40
	var confs []*amqp.DeferredConfirmation
	for i := range n {
		c, err := pub.PublishWithDeferredConfirm("", "fq", true, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, c := range confs {
		ok, err := c.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("publish %d through n2: ack %v, %v", i, ok, err)
		}
	}
	select {
	case r := <-returns:
		t.Fatalf("a message routed to the remote queue was returned: %d %s", r.ReplyCode, r.ReplyText)
	default:
	}

	_, cons := nodes[2].dial(t)
	q, err := cons.QueueDeclarePassive("fq", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != n {
		t.Fatalf("passive declare through n3: %d messages, want %d", q.Messages, n)
	}
	if err := cons.Qos(1, 0, false); err != nil { // so the requeued m0 is the next delivery
		t.Fatal(err)
	}
	ds, err := cons.Consume("fq", "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume through n3: %v", err)
	}
	first := recv(t, ds)
	if string(first.Body) != "m0" || first.Redelivered {
		t.Fatalf("first delivery %q redelivered=%v", first.Body, first.Redelivered)
	}
	if err := first.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	again := recv(t, ds)
	if string(again.Body) != "m0" || !again.Redelivered {
		t.Fatalf("after nack/requeue: %q redelivered=%v, want m0 redelivered", again.Body, again.Redelivered)
	}
	if err := again.Ack(false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		d := recv(t, ds)
		if want := fmt.Sprintf("m%d", i); string(d.Body) != want || d.Redelivered {
			t.Fatalf("delivery %d: %q redelivered=%v, want %s", i, d.Body, d.Redelivered, want)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-ds:
		t.Fatalf("a message came twice: %q", d.Body)
	case <-time.After(200 * time.Millisecond):
	}

	// basic.get through n3, acked there.
	if err := cons.Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishWithContext(ctx, "", "fq", false, false, amqp.Publishing{Body: []byte("got")}); err != nil {
		t.Fatal(err)
	}
	var g amqp.Delivery
	eventually(t, "basic.get through n3", func() error {
		d, ok, err := cons.Get("fq", false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return errors.New("empty")
		}
		g = d
		return nil
	})
	if string(g.Body) != "got" {
		t.Fatalf("got %q", g.Body)
	}
	if err := g.Ack(false); err != nil {
		t.Fatal(err)
	}
	holder, err := nodes[0].srv.vhost("/").QueueFor(nil, "fq")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the holder's queue empty and settled", func() error {
		st := holder.Core().Stats()
		if st.Ready != 0 || st.Unacked != 0 {
			return fmt.Errorf("ready %d unacked %d", st.Ready, st.Unacked)
		}
		return nil
	})
}

// TestForwardTxCommitAndQueueDeleted: a transaction on n2 publishing to n1's queue gets
// tx.commit-ok only once n1 has the messages; deleting the queue on n1 sends basic.cancel
// to n3's consumer of it.
func TestForwardTxCommitAndQueueDeleted(t *testing.T) {
	nodes := startForwardCluster(t)
	queueOn(t, nodes, 0, "tq")
	holder, err := nodes[0].srv.vhost("/").QueueFor(nil, "tq")
	if err != nil {
		t.Fatal(err)
	}

	_, tx := nodes[1].dial(t)
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tx.PublishWithContext(context.Background(), "", "tq", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "t%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if r := holder.Core().Stats().Ready; r != 0 {
		t.Fatalf("the holder has %d messages before the commit", r)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if r := holder.Core().Stats().Ready; r != 3 {
		t.Fatalf("tx.commit-ok came when the holder had %d of the 3 messages", r)
	}

	_, cons := nodes[2].dial(t)
	cancels := cons.NotifyCancel(make(chan string, 1))
	if _, err := cons.Consume("tq", "watch", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].srv.DeleteQueueAs("guest", "/", "tq", false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "watch" {
			t.Fatalf("basic.cancel for %q", tag)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no basic.cancel for the consumer of a deleted queue on another node")
	}
}

// TestForwardRefusalNacks: a queue on n1 that refuses publishes when full (x-overflow
// reject-publish): a confirmed publisher on n2 gets basic.ack for the message it took and
// basic.nack for the one it refused.
func TestForwardRefusalNacks(t *testing.T) {
	nodes := startForwardCluster(t)
	args, err := amqpwire.AppendField(nil, "x-max-length", int64(1))
	if err == nil {
		args, err = amqpwire.AppendField(args, "x-overflow", "reject-publish")
	}
	if err != nil {
		t.Fatal(err)
	}
	queueWith(t, nodes, 0, vhost.QueueDecl{Name: "full", Durable: true, Args: args})
	_, pub := nodes[1].dial(t)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range []bool{true, false} {
		c, err := pub.PublishWithDeferredConfirm("", "full", false, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := c.WaitContext(ctx)
		if err != nil || ok != want {
			t.Fatalf("publish %d through n2 to n1's full queue: ack %v, %v; want ack %v", i, ok, err, want)
		}
	}
}
