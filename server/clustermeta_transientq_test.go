package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server/servertest"
)

// TestClusterNonDurableQueueIsShared: a non-durable (not exclusive) queue declared on one
// node is the cluster's, as in RabbitMQ: it lives on that node, every node knows it, a
// client of another node that declares the same name gets that queue (not one of its own),
// and a message published through a third node reaches a consumer of the second.
func TestClusterNonDurableQueueIsShared(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	channel := func(m *servertest.ClusterMember) *amqp.Channel { return servertest.Channel(t, m.Addr) }
	owner := channel(nodes[0])
	if _, err := owner.QueueDeclare("tq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, "every node knows tq", func() error {
		for _, n := range nodes {
			for _, v := range n.Srv.Vhosts() {
				if v.Name() == "/" && !v.HasQueue("tq") {
					return errors.New(n.Name + " does not know tq")
				}
			}
		}
		return nil
	})
	consumer := channel(nodes[1])
	if _, err := consumer.QueueDeclare("tq", false, false, false, false, nil); err != nil {
		t.Fatalf("the same declaration on another node: %v", err)
	}
	deliveries, err := consumer.Consume("tq", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := channel(nodes[2]).PublishWithContext(context.Background(), "", "tq", false, false, amqp.Publishing{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if string(d.Body) != "hello" {
			t.Fatalf("got %q", d.Body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a message published through n3 did not reach n2's consumer of n1's non-durable queue")
	}
}
