package vhost

import (
	"errors"
	"fmt"
	"testing"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/queue"
)

// testOwner is a connection as the model sees it.
type testOwner string

func (o *testOwner) OwnerName() string { return string(*o) }

func newOwner(name string) *testOwner { o := testOwner(name); return &o }

// testConsumer takes nothing (it never has credit) and counts server-side cancellations.
type testConsumer struct{ cancelled int }

func (c *testConsumer) Deliver(*queue.Queue, *queue.Entry) bool { return false }
func (c *testConsumer) CancelledByServer()                      { c.cancelled++ }

// replyCode is the AMQP reply code of a model error, 0 for none.
func replyCode(t *testing.T, err error) (uint16, string) {
	t.Helper()
	var ce *amqpwire.ChannelError
	if errors.As(err, &ce) {
		return ce.Code, ce.Text
	}
	if err != nil {
		t.Fatalf("error %v is not a channel error", err)
	}
	return 0, ""
}

// An exclusive queue belongs to the owner that declared it: every other owner, and the
// definitions loader (no owner), gets RabbitMQ's 405 RESOURCE_LOCKED; the owner's close
// deletes it; listings name its owner.
func TestExclusiveQueueBelongsToItsOwner(t *testing.T) {
	v := testVhost(t)
	a, b := newOwner("conn a"), newOwner("conn b")
	mustDeclareX(t, v, "x", "direct", nil)
	if _, err := v.DeclareQueue(a, QueueDecl{Name: "mine", Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	const locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
	for _, o := range []Owner{b, nil} {
		who := fmt.Sprintf("owner %v", o)
		ops := map[string]error{}
		_, ops["queue-for"] = v.QueueFor(o, "mine")
		_, ops["declare"] = v.DeclareQueue(o, QueueDecl{Name: "mine", Exclusive: true})
		_, ops["delete"] = v.DeleteQueue(o, "mine", false, false)
		ops["bind"] = v.Bind(o, binding.Binding{Source: "x", Dest: binding.Destination{Kind: binding.DestQueue, Name: "mine"}})
		ops["unbind"] = v.Unbind(o, binding.Binding{Source: "x", Dest: binding.Destination{Kind: binding.DestQueue, Name: "mine"}})
		for op, err := range ops {
			if code, text := replyCode(t, err); code != amqpwire.CodeResourceLocked || text != locked {
				t.Errorf("%s %s: %d %q, want 405 %q", who, op, code, text, locked)
			}
		}
	}
	q, err := v.QueueFor(a, "mine")
	if err != nil || !q.OwnedBy(a) || q.OwnedBy(b) {
		t.Fatalf("owner's own lookup: %v, owned by a %v, by b %v", err, q != nil && q.OwnedBy(a), q != nil && q.OwnedBy(b))
	}
	if err := v.Bind(a, binding.Binding{Source: "x", Dest: binding.Destination{Kind: binding.DestQueue, Name: "mine"}, RoutingKey: "k"}); err != nil {
		t.Fatalf("owner's bind: %v", err)
	}
	if qs := v.Queues(); len(qs) != 1 || qs[0].Owner != "conn a" || !qs[0].Exclusive() {
		t.Fatalf("listing: %+v, want mine owned by conn a", qs)
	}
	v.DeleteExclusiveQueues(b, []string{"mine"}) // not b's: stays
	if !v.HasQueue("mine") {
		t.Fatal("another owner's close deleted the queue")
	}
	v.DeleteExclusiveQueues(a, []string{"mine"})
	if v.HasQueue("mine") {
		t.Fatal("the owner's close left its exclusive queue")
	}
	if bs := v.Bindings(); len(bs) != 0 {
		t.Errorf("bindings left after the queue went: %+v", bs)
	}
}

// Deleting a queue cancels its consumers through Consumer.CancelledByServer, once each, and
// they leave the listing; a consumer removed before is not told.
func TestDeleteQueueCancelsItsConsumers(t *testing.T) {
	v := testVhost(t)
	mustDeclareQ(t, v, "q")
	q, err := v.QueueFor(nil, "q")
	if err != nil {
		t.Fatal(err)
	}
	stays, leaves := &testConsumer{}, &testConsumer{}
	if err := q.AddConsumer(stays, "ctag-1", queue.ConsumerOptions{Priority: 5}); err != nil {
		t.Fatal(err)
	}
	if err := q.AddConsumer(leaves, "ctag-2", queue.ConsumerOptions{NoAck: true}); err != nil {
		t.Fatal(err)
	}
	want := []ConsumerInfo{{Queue: "q", Tag: "ctag-1", Priority: 5}, {Queue: "q", Tag: "ctag-2", NoAck: true}}
	if got := v.Consumers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumers %+v, want %+v", got, want)
	}
	v.RemoveConsumer(q, leaves)
	if qs := v.Queues(); len(qs) != 1 || qs[0].Consumers != 1 {
		t.Fatalf("after one cancel: %+v, want q with 1 consumer", qs)
	}
	if _, err := v.DeleteQueue(nil, "q", false, false); err != nil {
		t.Fatal(err)
	}
	if stays.cancelled != 1 || leaves.cancelled != 0 {
		t.Errorf("cancelled by server: remaining consumer %d times, removed one %d times; want 1 and 0", stays.cancelled, leaves.cancelled)
	}
	if got := v.Consumers(); len(got) != 0 {
		t.Errorf("consumers listed after the queue went: %+v", got)
	}
}

// An auto-delete queue goes when its last consumer is removed, and not before.
func TestAutoDeleteQueueGoesWithItsLastConsumer(t *testing.T) {
	v := testVhost(t)
	q, err := v.DeclareQueue(nil, QueueDecl{Name: "auto", AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := &testConsumer{}, &testConsumer{}
	for i, c := range []*testConsumer{c1, c2} {
		if err := q.AddConsumer(c, fmt.Sprint("c", i), queue.ConsumerOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	v.RemoveConsumer(q, c1)
	if !v.HasQueue("auto") {
		t.Fatal("deleted while a consumer remained")
	}
	v.RemoveConsumer(q, c2)
	if v.HasQueue("auto") {
		t.Fatal("not deleted after its last consumer left")
	}
}

// testConfirm counts a publish's writes as the protocol's confirm does.
type testConfirm struct {
	added, done int
	nackable    bool
}

func (c *testConfirm) Add()                            { c.added++ }
func (c *testConfirm) Done(error)                      { c.done++ }
func (c *testConfirm) Hold(*queue.Queue, *queue.Entry) {}
func (c *testConfirm) Nackable() bool                  { return c.nackable }
func (c *testConfirm) settled() bool                   { return c.added == c.done }
func (c *testConfirm) String() string                  { return fmt.Sprintf("%d added, %d done", c.added, c.done) }
func (c *testConfirm) publish(v *Vhost, x *Exchange, s *Scratch, keys ...string) (bool, bool) {
	return v.Publish(x, &queue.Message{Exchange: x.Name(), RoutingKey: keys[0], Body: []byte("m")}, keys, c, s)
}

// Publish reports whether a message reached a queue and whether a queue refused it
// (x-overflow reject-publish), reaches each queue once however many keys and paths lead there,
// and settles every write it counts in the confirm.
func TestPublishRoutedAndRefused(t *testing.T) {
	v := testVhost(t)
	mustDeclareX(t, v, "x", "direct", nil)
	mustDeclareQ(t, v, "a")
	full, err := amqpwire.NewTable(map[string]any{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareQueue(nil, QueueDecl{Name: "small", Args: full}); err != nil {
		t.Fatal(err)
	}
	mustBind(t, v, "x", binding.DestQueue, "a", "k")
	mustBind(t, v, "x", binding.DestQueue, "a", "cc")
	mustBind(t, v, "x", binding.DestQueue, "small", "k")
	x, err := v.Exchange("x")
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	for _, tc := range []struct {
		keys            []string
		routed, refused bool
	}{
		{[]string{"nowhere"}, false, false},
		{[]string{"k", "cc"}, true, false}, // a once (two keys), small takes its one message
		{[]string{"k"}, true, true},        // a takes it, small is full and refuses
	} {
		c := &testConfirm{nackable: true}
		routed, refused := c.publish(v, x, &s, tc.keys...)
		if routed != tc.routed || refused != tc.refused {
			t.Errorf("keys %v: routed %v refused %v, want %v %v", tc.keys, routed, refused, tc.routed, tc.refused)
		}
		if !c.settled() {
			t.Errorf("keys %v: confirm left waiting: %v", tc.keys, c)
		}
	}
	ready := map[string]int{}
	for _, q := range v.Queues() {
		ready[q.Name] = q.Ready
	}
	if ready["a"] != 2 || ready["small"] != 1 {
		t.Errorf("ready %v, want a 2 (each publish once) and small 1", ready)
	}
}

// Listings: every exchange, the predeclared ones and the default included; every binding,
// with each queue's implicit binding from the default exchange, as RabbitMQ lists them.
func TestSnapshotsListExchangesAndBindings(t *testing.T) {
	v := testVhost(t)
	mustDeclareX(t, v, "x", "topic", nil)
	mustDeclareQ(t, v, "q")
	mustBind(t, v, "x", binding.DestQueue, "q", "a.#")
	var names []string
	for _, x := range v.Exchanges() {
		names = append(names, x.Name+":"+x.Kind)
	}
	want := "[:direct amq.direct:direct amq.fanout:fanout amq.headers:headers amq.match:headers amq.rabbitmq.trace:topic amq.topic:topic x:topic]"
	if fmt.Sprint(names) != want {
		t.Errorf("exchanges %v, want %s", names, want)
	}
	var bs []string
	for _, b := range v.Bindings() {
		bs = append(bs, fmt.Sprintf("%q->%s %s %q", b.Source, b.Dest.Kind, b.Dest.Name, b.RoutingKey))
	}
	if want := []string{`""->queue q "q"`, `"x"->queue q "a.#"`}; fmt.Sprint(bs) != fmt.Sprint(want) {
		t.Errorf("bindings %v, want %v", bs, want)
	}
}

// A queue's listing names the policy that applies to it, also while policies change (run
// with -race: the policy name is read under the lock it is written under).
func TestQueuesListingShowsPolicy(t *testing.T) {
	v := testVhost(t)
	mustDeclareQ(t, v, "jobs")
	all, err := configs.CompilePattern("*")
	if err != nil {
		t.Fatal(err)
	}
	set := func(name string) {
		v.SetPolicies([]Policy{{Name: name, Pattern: all, ApplyTo: PolicyQueues, Def: PolicyDef{MaxLength: i64(int64(len(name)))}}})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			set(fmt.Sprint("p", i))
		}
	}()
	for i := 0; i < 50; i++ {
		_ = v.Queues()
	}
	<-done
	set("last")
	if qs := v.Queues(); len(qs) != 1 || qs[0].Policy != "last" {
		t.Errorf("listing %+v, want jobs with policy last", qs)
	}
}
