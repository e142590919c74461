package server_test

import (
	"errors"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server/servertest"
)

// TestClusterExchangeDeleteIfUnusedSeesLocalBindings: in a cluster, exchange.delete with
// if-unused, by a client of a follower, of an exchange bound only to a non-durable queue on
// that follower (such a queue stays on its node, with its bindings) is refused with 406, as
// on a single node: the leader, which does not see the binding, must not delete the exchange
// from under it.
func TestClusterExchangeDeleteIfUnusedSeesLocalBindings(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	// A client of a follower: the leader applies the deletion with what it knows.
	var follower *servertest.ClusterMember
	servertest.Eventually(t, "a metadata leader", func() error {
		leader := nodes[0].Node.Status().Leader
		for _, n := range nodes {
			if leader != "" && n.Name != leader {
				follower = n
				return nil
			}
		}
		return errors.New("none")
	})
	ch := servertest.Channel(t, follower.Addr)
	if err := ch.ExchangeDeclare("x", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("local", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("local", "k", "x", false, nil); err != nil {
		t.Fatal(err)
	}
	err := ch.ExchangeDelete("x", true, false)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("exchange.delete if-unused of an exchange bound to a local queue: %v, want 406", err)
	}
	servertest.Eventually(t, "the exchange on every node", func() error {
		for _, n := range nodes {
			for _, v := range n.Srv.Vhosts() {
				if v.Name() == "/" && !v.HasExchange("x") {
					return errors.New(n.Name + " lost exchange x")
				}
			}
		}
		return nil
	})
}

// TestClusterQuorumDeclareOkFromTheLeader: a passive queue.declare of a quorum queue through
// a member that does not lead it answers with the leader's counts, as RabbitMQ's: the
// consumer attached there is counted (a member's own view has no consumers), and so is a
// message the leader has just taken.
func TestClusterQuorumDeclareOkFromTheLeader(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	byName := map[string]*servertest.ClusterMember{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	dial := func(m *servertest.ClusterMember) *amqp.Channel { return servertest.Channel(t, m.Addr) }
	if _, err := dial(nodes[0]).QueueDeclare("qd", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	var leader, follower *servertest.ClusterMember
	servertest.Eventually(t, "qd's leader", func() error {
		st, _ := nodes[0].Srv.QuorumQueueStatus("/", "qd")
		if st.Group == nil || byName[st.Group.Leader] == nil {
			return errors.New("no leader yet")
		}
		leader = byName[st.Group.Leader]
		for _, n := range nodes {
			if n != leader {
				follower = n
			}
		}
		if fst, _ := follower.Srv.QuorumQueueStatus("/", "qd"); fst.Leader != leader.Name {
			return errors.New(follower.Name + " does not name the leader yet")
		}
		return nil
	})
	lch := dial(leader)
	if _, err := lch.Consume("qd", "c", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Asked again while the consumer settles (a leader elected a moment ago may move it); a
	// member answering with its own view never counts it.
	fch := dial(follower)
	servertest.Eventually(t, "the leader's consumer counted by a passive declare through "+follower.Name, func() error {
		q, err := fch.QueueDeclarePassive("qd", true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		if err != nil {
			fch = dial(follower) // the channel is closed: try on a new one
			return err
		}
		if q.Consumers != 1 {
			return fmt.Errorf("%+v", q)
		}
		return nil
	})
}
