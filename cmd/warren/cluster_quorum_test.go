package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// quorumView is what a node's management API says of a quorum queue.
type quorumView struct {
	Messages int      `json:"messages"`
	Leader   string   `json:"leader"`
	Members  []string `json:"members"`
	Online   []string `json:"online"`
}

func (n *clusterNode) quorumQueue(t *testing.T, name string) (quorumView, bool) {
	t.Helper()
	status, body := n.api(t, "GET", "/api/queues/%2F/"+name, "")
	var v quorumView
	if status != 200 || json.Unmarshal([]byte(body), &v) != nil {
		return v, false
	}
	return v, true
}

// waitQuorum waits until every node of nodes reports the queue with the same leader, one of
// nodes, and want messages (want < 0: any count); it returns the leader.
func waitQuorum(t *testing.T, nodes []*clusterNode, queue string, want int) string {
	t.Helper()
	names := map[string]*clusterNode{}
	for _, n := range nodes {
		names[n.name] = n
	}
	deadline := time.Now().Add(45 * time.Second)
	var seen []quorumView
	for time.Now().Before(deadline) {
		seen = seen[:0]
		ok := true
		for _, n := range nodes {
			v, got := n.quorumQueue(t, queue)
			seen = append(seen, v)
			if !got || names[v.Leader] == nil || v.Leader != seen[0].Leader || (want >= 0 && v.Messages != want) {
				ok = false
			}
		}
		if ok {
			return seen[0].Leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the nodes do not agree on queue %s (leader among them, %d messages): %+v", queue, want, seen)
	return ""
}

func publishConfirmed(t *testing.T, ch *amqp.Channel, queue string, from, to int) {
	t.Helper()
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, to-from))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		err := ch.PublishWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("m%04d", i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := from; i < to; i++ {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("message %d of %d..%d nacked", c.DeliveryTag, from, to)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no confirm for message %d of %d..%d within 30s", i, from, to)
		}
	}
}

// TestClusterQuorumQueueSurvivesLeaderKill: on three real brokers a quorum queue is
// replicated: a publisher confirmed by the queue's leader finds its messages counted on every
// node; acks reach every node; when the leader is killed with SIGKILL the two others elect a
// new one within seconds, which has exactly the messages not acked (the delivered-but-unacked
// one redelivered), takes new confirmed publishes with one node down, and the killed node,
// restarted, catches up to the same count.
func TestClusterQuorumQueueSurvivesLeaderKill(t *testing.T) {
	nodes, start := procCluster(t, "n1", "n2", "n3")
	agree(t, nodes)
	byName := func(name string) *clusterNode {
		for _, n := range nodes {
			if n.name == name {
				return n
			}
		}
		t.Fatalf("no node %s", name)
		return nil
	}

	_, ch := nodes[0].dial(t, "guest", "guest")
	if _, err := ch.QueueDeclare("qq", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	leader := byName(waitQuorum(t, nodes, "qq", 0))
	if v, _ := leader.quorumQueue(t, "qq"); len(v.Members) != 3 {
		t.Fatalf("members %v, want all three nodes", v.Members)
	}

	_, lch := leader.dial(t, "guest", "guest")
	publishConfirmed(t, lch, "qq", 0, 100)
	waitQuorum(t, nodes, "qq", 100)

	// Ack the first 20, keep the 21st unacked, then kill the leader.
	_, cch := leader.dial(t, "guest", "guest")
	if err := cch.Qos(21, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cch.Consume("qq", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 21; i++ {
		select {
		case d := <-deliveries:
			if want := fmt.Sprintf("m%04d", i); string(d.Body) != want {
				t.Fatalf("delivery %d is %s, want %s", i, d.Body, want)
			}
			if i < 20 {
				if err := d.Ack(false); err != nil {
					t.Fatal(err)
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("delivery %d did not come", i)
		}
	}
	waitQuorum(t, nodes, "qq", 80)
	var survivors []*clusterNode
	killed := -1
	for i, n := range nodes {
		if n == leader {
			killed = i
			if err := n.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = n.cmd.Wait()
		} else {
			survivors = append(survivors, n)
		}
	}

	next := byName(waitQuorum(t, survivors, "qq", -1))
	_, nch := next.dial(t, "guest", "guest")
	publishConfirmed(t, nch, "qq", 100, 110)
	waitQuorum(t, survivors, "qq", 90)

	got, err := nch.Consume("qq", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for len(bodies) < 90 {
		select {
		case d := <-got:
			if string(d.Body) == "m0020" && !d.Redelivered {
				t.Error("the message delivered but not acked by the killed leader came back without the redelivered flag")
			}
			bodies = append(bodies, string(d.Body))
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("after the failover only %d of 90 messages came: %v", len(bodies), bodies)
		}
	}
	slices.Sort(bodies)
	for i, b := range bodies {
		if want := fmt.Sprintf("m%04d", i+20); b != want {
			t.Fatalf("after the failover message %d is %s, want %s (acked ones must not come back, none may be lost)", i, b, want)
		}
	}
	waitQuorum(t, survivors, "qq", 0)

	start(killed)
	waitQuorum(t, nodes, "qq", 0)
}
