package server

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/vhost"
)

// TestClusterTransientExchangeSurvivesANodeRestart: a non-durable exchange, and a binding from
// it to a durable queue, are part of the cluster's replicated model: a node that restarts
// while the others run still has them (it does not apply again what it applied before its
// restart, so it keeps them in its store), as RabbitMQ keeps a transient exchange while its
// cluster runs.
func TestClusterTransientExchangeSurvivesANodeRestart(t *testing.T) {
	nodes := startMetaCluster(t)
	a, c := nodes[0], nodes[2]
	if _, err := a.srv.DeclareExchangeAs("guest", "/", exchange.Definition{Name: "tx", Kind: "direct"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "dq", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.BindAs("guest", "/", binding.Binding{Source: "tx", Dest: binding.Destination{Kind: binding.DestQueue, Name: "dq"}, RoutingKey: "k"}); err != nil {
		t.Fatal(err)
	}
	has := func() error {
		if !slices.Contains(exchangeNames(c.srv, "/"), "tx") {
			return errors.New("no exchange tx")
		}
		if !slices.ContainsFunc(c.srv.vhost("/").Bindings(), func(b binding.Binding) bool { return b.Source == "tx" && b.Dest.Name == "dq" }) {
			return errors.New("no binding tx -> dq")
		}
		return nil
	}
	eventually(t, "tx and its binding on the third node", has)
	c.stop(t)
	c.start(t)
	eventually(t, "tx and its binding on the third node after its restart", has)
	for _, x := range c.srv.vhost("/").Exchanges() {
		if x.Name == "tx" && x.Durable {
			t.Errorf("tx is listed durable after the restart")
		}
	}
}

// TestClusterNonDurableQueueAcrossRestarts: a non-durable queue lives as long as its owner
// node runs. Another node that restarts declares it again from its record (it keeps no such
// queue in its store) and forwards to the owner; when the owner restarts, the queue is gone,
// and its record is deleted on every node.
func TestClusterNonDurableQueueAcrossRestarts(t *testing.T) {
	nodes := startMetaCluster(t)
	a, c := nodes[0], nodes[2]
	if _, err := a.srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "tq"}); err != nil {
		t.Fatal(err)
	}
	known := func(m *metaNode) error {
		if m.srv.vhost("/").HasQueue("tq") {
			return nil
		}
		return errors.New(m.name + " does not know tq")
	}
	eventually(t, "tq on the third node", func() error { return known(c) })
	c.stop(t)
	c.start(t)
	eventually(t, "tq on the third node after its restart", func() error { return known(c) })
	if q, err := c.srv.vhost("/").QueueFor(nil, "tq"); err != nil || q.Remote() != a.name {
		t.Fatalf("tq on the restarted node: %v, held by %q, want %s", err, q.Remote(), a.name)
	}

	a.stop(t)
	a.start(t)
	eventually(t, "tq gone everywhere once its owner restarted", func() error {
		for _, m := range nodes {
			if m.srv.vhost("/").HasQueue("tq") {
				return errors.New(m.name + " still has tq")
			}
			if _, ok := m.n.QueueRecord("/", "tq"); ok {
				return errors.New(m.name + " still has tq's record")
			}
		}
		return nil
	})
}

// TestClusterDownNodeLosesItsNonDurableQueues: when the node of a non-durable queue goes down
// and stays down, the queue is deleted on every node, as RabbitMQ deletes the non-durable
// queues of a node that went down (its durable queues stay); a client of another node can
// then declare the name and gets a queue of its own, which the first node, back, finds held
// there.
func TestClusterDownNodeLosesItsNonDurableQueues(t *testing.T) {
	nodes := startMetaCluster(t)
	owner, other := nodes[0], nodes[1]
	for _, d := range []vhost.QueueDecl{{Name: "tq"}, {Name: "dq", Durable: true}} {
		if _, err := owner.srv.DeclareQueueAs("guest", "/", d); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "tq and dq on every node", func() error {
		for _, m := range nodes {
			if !m.srv.vhost("/").HasQueue("tq") || !m.srv.vhost("/").HasQueue("dq") {
				return errors.New(m.name + " does not know both")
			}
		}
		return nil
	})
	owner.stop(t)
	eventually(t, "tq gone from the running nodes", func() error {
		for _, m := range nodes[1:] {
			if m.srv.vhost("/").HasQueue("tq") {
				return errors.New(m.name + " still has tq")
			}
			if _, ok := m.n.QueueRecord("/", "tq"); ok {
				return errors.New(m.name + " still has tq's record")
			}
		}
		return nil
	})
	for _, m := range nodes[1:] {
		if q, err := m.srv.vhost("/").QueueFor(nil, "dq"); err != nil || q.Remote() != owner.name {
			t.Fatalf("the durable dq on %s: %v; want it kept, held by %s", m.name, err, owner.name)
		}
	}
	if _, err := other.srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "tq"}); err != nil {
		t.Fatalf("declaring tq again on %s: %v", other.name, err)
	}
	if q, err := other.srv.vhost("/").QueueFor(nil, "tq"); err != nil || q.Remote() != "" {
		t.Fatalf("tq declared again on %s: %v, held by %q; want its own", other.name, err, q.Remote())
	}
	owner.start(t)
	eventually(t, "the owner, back, finds tq held by "+other.name, func() error {
		q, err := owner.srv.vhost("/").QueueFor(nil, "tq")
		if err != nil {
			return err
		}
		if q.Remote() != other.name {
			return errors.New("tq held by " + q.Remote())
		}
		return nil
	})
}

// TestClusterNonDurableQueueDeletedTwice: two deletions of the same non-durable queue (its
// auto-delete or expiry on its node, and a client's queue.delete that named the record it
// saw) both succeed, as deleting a queue that is gone does; only a record replaced since by
// another node's declaration refuses the deletion of the old one.
func TestClusterNonDurableQueueDeletedTwice(t *testing.T) {
	nodes := startMetaCluster(t)
	a, b := nodes[0], nodes[1]
	if _, err := a.srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "tq"}); err != nil {
		t.Fatal(err)
	}
	rec, ok := a.n.QueueRecord("/", "tq")
	if !ok || !rec.Transient {
		t.Fatalf("tq's record: %+v, %v", rec, ok)
	}
	for i := range 2 {
		if err := a.srv.propose(cluster.OpQueueDelete, "/", "tq", deleteArgs{}, &rec); err != nil {
			t.Fatalf("deletion %d of tq: %v", i+1, err)
		}
	}
	if _, err := b.srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "tq"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's tq known on a", func() error {
		if r, ok := a.n.QueueRecord("/", "tq"); !ok || r.Owner != b.name {
			return errors.New("not yet")
		}
		return nil
	})
	if err := a.srv.propose(cluster.OpQueueDelete, "/", "tq", deleteArgs{}, &rec); !errors.Is(err, cluster.ErrStaleRecord) && (err == nil || !strings.Contains(err.Error(), cluster.ErrStaleRecord.Error())) {
		t.Fatalf("deleting a's old tq after b declared it again: %v, want it refused as stale", err)
	}
	if r, ok := a.n.QueueRecord("/", "tq"); !ok || r.Owner != b.name {
		t.Fatalf("b's tq after a stale deletion: %+v, %v", r, ok)
	}
}
