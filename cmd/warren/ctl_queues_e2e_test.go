package main

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestCtlQueuesReplaceDeadNode follows docs/cluster.md's "Replacing a dead node" with real
// brokers: a quorum queue on n1, n2, n3 holds confirmed messages; n3 is killed; `warren ctl
// cluster leave n3` takes it out of the queue too; a fresh n4 joins (`cluster join`) and
// `warren ctl queues grow n4 all` makes it a member (ctl says so, the broker logs it), which
// catches up to the messages; with n1 killed as well, n2 and n4 still make the queue's
// majority and a client of n4 consumes every message.
func TestCtlQueuesReplaceDeadNode(t *testing.T) {
	var nodes []*clusterNode
	var peers, addrs []string
	for _, name := range []string{"n1", "n2", "n3"} {
		addr := freeAddr(t)
		nodes = append(nodes, &clusterNode{name: name, apiAddr: freeAddr(t), dataDir: t.TempDir()})
		peers, addrs = append(peers, name+"@"+addr), append(addrs, addr)
	}
	var logMu sync.Mutex
	var memberLog []string // n1's log lines about member changes
	run := func(n *clusterNode, args ...string) {
		cmd, amqpAddr, lines := startBroker(t, append([]string{"--data-dir", n.dataDir, "--management-listen", n.apiAddr,
			"--node-name", n.name, "--cluster-peers", strings.Join(peers, ",")}, args...)...)
		n.cmd, n.amqp = cmd, amqpAddr
		go func() {
			for l := range lines {
				if n.name == "n1" && strings.Contains(l, "quorum queue members changed") {
					logMu.Lock()
					memberLog = append(memberLog, l)
					logMu.Unlock()
				}
			}
		}()
	}
	for i, n := range nodes {
		run(n, "--cluster-listen", addrs[i])
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	agree(t, nodes)
	ctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(n1.cmd.Path, append([]string{"ctl", "--url", "http://" + n1.apiAddr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("warren ctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	waitView := func(n *clusterNode, what string, ok func(quorumView) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var v quorumView
		for time.Now().Before(deadline) {
			var got bool
			if v, got = n.quorumQueue(t, "qq"); got && ok(v) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: %s: not within 30s; last %+v", n.name, what, v)
	}

	_, ch := n1.dial(t, "guest", "guest")
	if _, err := ch.QueueDeclare("qq", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	// Published through the queue's leader: a follower may still forward to the placeholder
	// holder "(electing)" (and nack) for a moment after every node's API names the leader.
	leader := waitQuorum(t, nodes, "qq", 0)
	for _, n := range nodes {
		if n.name == leader {
			_, lch := n.dial(t, "guest", "guest")
			publishConfirmed(t, lch, "qq", 0, 10)
		}
	}
	waitQuorum(t, nodes, "qq", 10)

	if err := n3.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = n3.cmd.Wait()
	ctl("cluster", "leave", "n3")
	waitView(n1, "qq's members without n3", func(v quorumView) bool { return slices.Equal(sorted(v.Members), []string{"n1", "n2"}) })

	n4addr := freeAddr(t)
	n4 := &clusterNode{name: "n4", apiAddr: freeAddr(t), dataDir: t.TempDir()}
	run(n4, "--cluster-listen", n4addr, "--cluster-advertise", n4addr)
	ctl("cluster", "join", "n4@"+n4addr)
	out := ctl("queues", "grow", "n4", "all")
	if want := "n4 is now a member of 1 of 1 matching quorum queues"; !strings.Contains(out, "grow of n4 requested (strategy all)") || !strings.Contains(out, want) {
		t.Errorf("warren ctl queues grow n4 all printed %q, want the request and %q", out, want)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		logMu.Lock()
		logged := strings.Join(memberLog, "\n")
		logMu.Unlock()
		if strings.Contains(logged, `"operation":"grow"`) && strings.Contains(logged, `"changed":1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n1 did not log the grow with its counts: %q", logged)
		}
	}
	waitView(n4, "qq on n4 with three members and the 10 messages", func(v quorumView) bool {
		return slices.Equal(sorted(v.Members), []string{"n1", "n2", "n4"}) && v.Messages == 10
	})
	// The replacement holds the queue: without n1, n2 and n4 are its majority.
	waitQuorum(t, []*clusterNode{n1, n2, n4}, "qq", 10)
	if err := n1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = n1.cmd.Wait()
	waitQuorum(t, []*clusterNode{n2, n4}, "qq", 10)
	_, ch4 := n4.dial(t, "guest", "guest")
	deliveries, err := ch4.Consume("qq", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for len(bodies) < 10 {
		select {
		case d := <-deliveries:
			bodies = append(bodies, string(d.Body))
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("with n1 and n3 gone, a client of n4 got %d of 10 messages: %v", len(bodies), bodies)
		}
	}
	slices.Sort(bodies)
	for i, b := range bodies {
		if want := fmt.Sprintf("m%04d", i); b != want {
			t.Fatalf("message %d is %s, want %s", i, b, want)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
