package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server/servertest"
)

// TestClusterImportedQueuesAreTheClusters: queues imported through one node with a
// definitions document (POST /api/definitions) are the cluster's queues, as if declared
// through the management API: a classic queue lives on the importing node and every node
// forwards to it, a quorum queue is replicated on every node, and the bindings to both route
// from any node. A message published through one node is got through another.
func TestClusterImportedQueuesAreTheClusters(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	doc := `{
	  "exchanges": [{"name": "imp.x", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}],
	  "queues": [
	    {"name": "imp.classic", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}},
	    {"name": "imp.quorum", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "quorum"}}
	  ],
	  "bindings": [
	    {"source": "imp.x", "vhost": "/", "destination": "imp.classic", "destination_type": "queue", "routing_key": "c", "arguments": {}},
	    {"source": "imp.x", "vhost": "/", "destination": "imp.quorum", "destination_type": "queue", "routing_key": "q", "arguments": {}}
	  ]
	}`
	servertest.Eventually(t, "the import through n2", func() error {
		return nodes[1].Srv.ImportDefinitions([]byte(doc), "", "guest")
	})
	if st, ok := nodes[0].Srv.QuorumQueueStatus("/", "imp.quorum"); !ok || len(st.Members) != 3 {
		t.Fatalf("imp.quorum on n1: %+v (replicated %v), want a quorum queue on the three nodes", st, ok)
	}
	servertest.Eventually(t, "imp.quorum's leader known on n3", func() error {
		if st, _ := nodes[2].Srv.QuorumQueueStatus("/", "imp.quorum"); st.Leader == "" {
			return fmt.Errorf("no leader")
		}
		return nil
	})

	pub := servertest.Channel(t, nodes[2].Addr)
	returns := pub.NotifyReturn(make(chan amqp.Return, 16))
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// n3 applies the bindings a moment after n2 answered the import: until then a mandatory
	// publish through it comes back (docs/cluster.md, "Limits of this version").
	for _, key := range []string{"c", "q"} {
		servertest.Eventually(t, "a publish with key "+key+" through n3 routed", func() error {
			c, err := pub.PublishWithDeferredConfirm("imp.x", key, true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("to " + key)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			ok, err := c.WaitContext(ctx)
			cancel()
			if !ok || err != nil {
				t.Fatalf("publish with key %s through n3: ack %v, %v", key, ok, err)
			}
			select {
			case r := <-returns:
				return fmt.Errorf("returned: %d %s", r.ReplyCode, r.ReplyText)
			default:
				return nil
			}
		})
	}
	get := servertest.Channel(t, nodes[0].Addr)
	for queue, want := range map[string]string{"imp.classic": "to c", "imp.quorum": "to q"} {
		servertest.Eventually(t, "a message in "+queue+" through n1", func() error {
			d, ok, err := get.Get(queue, true)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s is empty through n1", queue)
			}
			if string(d.Body) != want {
				t.Fatalf("%s through n1 gave %q, want %q", queue, d.Body, want)
			}
			return nil
		})
	}
}
