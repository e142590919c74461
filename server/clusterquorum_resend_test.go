package server_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server/servertest"
)

// TestQuorumPublishesResentAcrossFailover: publishers with confirms on the two nodes that do
// not lead a quorum queue keep publishing while its leader's node stops. No publish is nacked:
// what the stopped leader had not confirmed is resent, by the node the publisher is connected
// to, to the leader elected next (RabbitMQ's quorum queue client does the same). Every
// confirmed message is then consumed, and each publisher's messages come in the order it
// published them (a resent message may come twice: at least once).
func TestQuorumPublishesResentAcrossFailover(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	ch := servertest.Channel(t, nodes[0].Addr)
	if _, err := ch.QueueDeclare("qr", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	var leader string
	servertest.Eventually(t, "a leader of qr known on every node", func() error {
		leader = ""
		for _, n := range nodes {
			st, _ := n.Srv.QuorumQueueStatus("/", "qr")
			if st.Leader == "" || (leader != "" && st.Leader != leader) {
				return fmt.Errorf("%s names leader %q", n.Name, st.Leader)
			}
			leader = st.Leader
		}
		return nil
	})
	var stopped, survivor int
	for i, n := range nodes {
		if n.Name == leader {
			stopped = i
		} else {
			survivor = i
		}
	}

	const perPublisher = 400
	type result struct {
		name   string
		nacked []uint64
		err    error
	}
	results := make(chan result, 2)
	halfway := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, n := range nodes {
		if i == stopped {
			continue
		}
		pub := servertest.Channel(t, n.Addr)
		wg.Go(func() {
			r := result{name: n.Name}
			defer func() { results <- r }()
			if r.err = pub.Confirm(false); r.err != nil {
				return
			}
			confirms := pub.NotifyPublish(make(chan amqp.Confirmation, perPublisher))
			for j := range perPublisher {
				if j == perPublisher/4 {
					halfway <- struct{}{}
				}
				body := fmt.Sprintf("%s-%04d", n.Name, j)
				if r.err = pub.PublishWithContext(context.Background(), "", "qr", false, false,
					amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)}); r.err != nil {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			for range perPublisher {
				select {
				case c := <-confirms:
					if !c.Ack {
						r.nacked = append(r.nacked, c.DeliveryTag)
					}
				case <-time.After(30 * time.Second):
					r.err = fmt.Errorf("no confirm within 30 s")
					return
				}
			}
		})
	}
	<-halfway
	<-halfway
	nodes[stopped].Stop() // the leader goes: its streams break, its group elects another
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Fatalf("publisher on %s: %v", r.name, r.err)
		}
		if len(r.nacked) > 0 {
			t.Errorf("publisher on %s: %d publishes nacked across the failover (tags %v), want none", r.name, len(r.nacked), r.nacked)
		}
	}
	if t.Failed() {
		return
	}

	cons := servertest.Channel(t, nodes[survivor].Addr)
	deliveries, err := cons.Consume("qr", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{} // per publisher: the next message not seen yet
	for seen := 0; seen < 2*perPublisher; {
		select {
		case d := <-deliveries:
			name, num, _ := strings.Cut(string(d.Body), "-")
			j, err := strconv.Atoi(num)
			if err != nil {
				t.Fatalf("unexpected message %q", d.Body)
			}
			switch {
			case j == next[name]:
				next[name]++
				seen++
			case j > next[name]:
				t.Fatalf("from %s message %d came before %d: lost, or out of publish order", name, j, next[name])
			}
			// j < next: a resent message that had been stored before its leader went (at least once)
		case <-time.After(30 * time.Second):
			t.Fatalf("after the failover only %d of %d confirmed messages came: %v", seen, 2*perPublisher, next)
		}
	}
}

// TestQuorumPublishWithoutMajorityNacked: with two of a quorum queue's three nodes stopped,
// no leader can be elected: a publish through the third is resent for a while
// (vhost.ResendFor) and then nacked, never confirmed, and the channel stays usable.
func TestQuorumPublishWithoutMajorityNacked(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	ch := servertest.Channel(t, nodes[0].Addr)
	if _, err := ch.QueueDeclare("qn", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, "a leader of qn known on n1", func() error {
		if st, _ := nodes[0].Srv.QuorumQueueStatus("/", "qn"); st.Leader == "" {
			return fmt.Errorf("none")
		}
		return nil
	})
	nodes[1].Stop()
	nodes[2].Stop()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	var pending []*amqp.DeferredConfirmation
	for i := range 3 {
		c, err := ch.PublishWithDeferredConfirm("", "qn", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, c := range pending {
		ok, err := c.WaitContext(ctx)
		if err != nil {
			t.Fatalf("publish %d: no answer within 30 s: %v", i, err)
		}
		if ok {
			t.Fatalf("publish %d confirmed with two of three members down", i)
		}
	}
	t.Logf("nacked after %v", time.Since(started).Round(time.Millisecond))
	if _, err := ch.QueueDeclarePassive("qn", true, false, false, false, nil); err != nil {
		t.Fatalf("the channel after the nacks: %v", err)
	}
}
