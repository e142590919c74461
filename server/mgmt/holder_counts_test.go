package mgmt_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestQueueCountsAgreeAcrossNodes: a classic queue lives on the node whose client declared
// it; the other nodes list it with that node's counts (ready, unacknowledged, consumers),
// not their own zeros, in /api/queues and in /api/overview's totals, as RabbitMQ's cluster-wide
// listings do.
func TestQueueCountsAgreeAcrossNodes(t *testing.T) {
	nodes := memberCluster(t)
	ch := amqpChannel(t, nodes[0].amqp)
	if _, err := ch.QueueDeclare("held", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := ch.PublishWithContext(context.Background(), "", "held", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// One delivered and not acknowledged, through another node's client, once that node has
	// applied the declaration.
	waitFor(t, "n2 knowing the queue", func() (bool, string) {
		_, code := viewQueue(t, nodes[1], "held")
		return code == 200, fmt.Sprint(code)
	})
	cch := amqpChannel(t, nodes[1].amqp)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cch.Consume("held", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries

	type counts struct {
		Messages  int    `json:"messages"`
		Ready     int    `json:"messages_ready"`
		Unacked   int    `json:"messages_unacknowledged"`
		Consumers int    `json:"consumers"`
		Node      string `json:"node"`
	}
	for _, n := range nodes {
		waitFor(t, n.name+" listing held with its holder's counts", func() (bool, string) {
			code, _, body := call(t, "GET", n.api+"/api/queues/%2F/held", "guest", "guest")
			if code != 200 {
				return false, fmt.Sprintf("%d %s", code, body)
			}
			c := decode[counts](t, body)
			return c.Messages == 5 && c.Ready == 4 && c.Unacked == 1 && c.Consumers == 1 && strings.HasSuffix(c.Node, "n1"),
				fmt.Sprintf("%+v", c)
		})
		waitFor(t, n.name+"'s overview totals", func() (bool, string) {
			code, _, body := call(t, "GET", n.api+"/api/overview", "guest", "guest")
			if code != 200 {
				return false, fmt.Sprintf("%d %s", code, body)
			}
			o := decode[struct {
				Totals struct {
					Messages int `json:"messages"`
					Unacked  int `json:"messages_unacknowledged"`
				} `json:"queue_totals"`
			}](t, body)
			return o.Totals.Messages == 5 && o.Totals.Unacked == 1, fmt.Sprintf("%+v", o)
		})
	}
}
