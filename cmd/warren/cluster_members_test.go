package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// waitMembers waits until each of nodes lists the quorum queue's members as want (sorted).
func waitMembers(t *testing.T, nodes []*clusterNode, queue string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		agreed := true
		var last quorumView
		for _, n := range nodes {
			v, ok := n.quorumQueue(t, queue)
			slices.Sort(v.Members)
			if last = v; !ok || !slices.Equal(v.Members, want) {
				agreed = false
				break
			}
		}
		if agreed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes do not list %s's members as %v within 45s; last seen %+v", queue, want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// snapshotDirs are the quorum queue groups whose part a node keeps in its data dir.
func snapshotDirs(t *testing.T, n *clusterNode) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(n.dataDir, "raft", "q*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestClusterQuorumMemberRemovedWhileDown: three real brokers replicate a quorum queue holding
// confirmed messages; one is killed with SIGKILL and taken out of the queue through the
// management API of another (RabbitMQ's DELETE /api/queues/quorum/{vhost}/{queue}/replicas/delete,
// 202); the two others keep the messages. Restarted, the removed node deletes the copy it
// kept and serves the queue from the others; added back (POST .../replicas/add, 204), it
// catches up to the same committed count and every message is consumed through it once.
// Finally `cluster leave` of a node takes it out of the queue too, as RabbitMQ's
// forget_cluster_node does.
func TestClusterQuorumMemberRemovedWhileDown(t *testing.T) {
	nodes, start := procCluster(t, "n1", "n2", "n3")
	agree(t, nodes)
	_, ch := nodes[0].dial(t, "guest", "guest")
	if _, err := ch.QueueDeclare("qq", true, false, false, false, map[string]any{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	waitQuorum(t, nodes, "qq", 0)
	publishConfirmed(t, ch, "qq", 0, 30)
	waitQuorum(t, nodes, "qq", 30)

	n3 := nodes[2]
	if len(snapshotDirs(t, n3)) != 1 {
		t.Fatalf("n3 keeps %v, want the one group's directory", snapshotDirs(t, n3))
	}
	if err := n3.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = n3.cmd.Wait()
	if status, body := nodes[0].api(t, "DELETE", "/api/queues/quorum/%2F/qq/replicas/delete", `{"node":"n3"}`); status != 202 {
		t.Fatalf("replicas/delete of n3: %d %s, want 202", status, body)
	}
	survivors := nodes[:2]
	waitMembers(t, survivors, "qq", "n1", "n2")
	waitQuorum(t, survivors, "qq", 30)

	start(2)
	waitMembers(t, nodes, "qq", "n1", "n2")
	waitQuorum(t, nodes, "qq", 30)
	for deadline := time.Now().Add(30 * time.Second); len(snapshotDirs(t, n3)) != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("n3, taken out of qq while down, still keeps %v after its restart", snapshotDirs(t, n3))
		}
	}

	if status, body := nodes[1].api(t, "POST", "/api/queues/quorum/%2F/qq/replicas/add", `{"node":"n3"}`); status != 204 {
		t.Fatalf("replicas/add of n3: %d %s, want 204", status, body)
	}
	waitMembers(t, nodes, "qq", "n1", "n2", "n3")
	waitQuorum(t, nodes, "qq", 30) // n3 counts what its own copy committed: it caught up
	if len(snapshotDirs(t, n3)) != 1 {
		t.Fatalf("n3, a member again, keeps %v", snapshotDirs(t, n3))
	}

	_, cch := n3.dial(t, "guest", "guest")
	deliveries, err := cch.Consume("qq", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 30 {
		select {
		case d := <-deliveries:
			if seen[string(d.Body)] {
				t.Fatalf("%s delivered twice", d.Body)
			}
			seen[string(d.Body)] = true
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of 30 messages consumed through n3", len(seen))
		}
	}
	for i := range 30 {
		if !seen[fmt.Sprintf("m%04d", i)] {
			t.Fatalf("m%04d was not delivered", i)
		}
	}
	waitQuorum(t, nodes, "qq", 0)

	if status, body := nodes[0].api(t, "DELETE", "/api/warren/cluster/members/n3", ""); status != 204 {
		t.Fatalf("cluster leave of n3: %d %s, want 204", status, body)
	}
	waitMembers(t, survivors, "qq", "n1", "n2")
}
