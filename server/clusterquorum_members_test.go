package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/servertest"
	"github.com/warrenmq/warren/server/vhost"
)

// groupView is what one node's Raft group says of a quorum queue: its committed messages
// and the voters of its Raft configuration (nil: the node runs no member of the group).
func groupView(m *servertest.ClusterMember, queue string) (messages int, members []string, leader string, ok bool) {
	st, found := m.Srv.QuorumQueueStatus("/", queue)
	if !found || st.Group == nil {
		return 0, nil, "", false
	}
	for _, ms := range st.Group.Members {
		if ms.Voter {
			members = append(members, ms.Name)
		}
	}
	slices.Sort(members)
	return st.Group.Messages, members, st.Group.Leader, true
}

// TestQuorumQueueMembersChange: a quorum queue declared on two of three nodes holds confirmed
// messages; adding the third node (through a node that is not a member) makes it a voter of
// the group, once caught up from the leader, with the same committed messages; deleting the
// leader's node takes it out of the group, a new leader is elected among the two others,
// the removed node keeps no Raft state or records of the queue and still serves it by
// forwarding: every message is consumed through it, once. Changes that cannot be made are
// refused with the reason.
func TestQuorumQueueMembersChange(t *testing.T) {
	nodes := servertest.Cluster(t, "n1", "n2", "n3")
	byName := map[string]*servertest.ClusterMember{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	conn, err := amqp.Dial(servertest.URL(nodes[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	args := amqp.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": int32(2)}
	declared := time.Now()
	if _, err := ch.QueueDeclare("qm", true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("classic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := nodes[0].Srv.QuorumQueueStatus("/", "qm")
	if len(st.Members) != 2 {
		t.Fatalf("members of qm %v, want 2 (x-quorum-initial-group-size)", st.Members)
	}
	var outsider *servertest.ClusterMember
	for _, n := range nodes {
		if !slices.Contains(st.Members, n.Name) {
			outsider = n
		}
	}
	servertest.Eventually(t, "a leader of qm known on every node", func() error {
		for _, n := range nodes {
			if st, _ := n.Srv.QuorumQueueStatus("/", "qm"); st.Leader == "" {
				return fmt.Errorf("%s knows no leader", n.Name)
			}
		}
		return nil
	})
	t.Logf("a leader of qm known on every node %v after the declaration", time.Since(declared).Round(time.Millisecond))
	// Published through the leader: through another node a publish made while that node still
	// names an earlier holder is nacked (the publisher would resend), which is not under test.
	var leaderName string
	servertest.Eventually(t, "qm's leader", func() error {
		for _, n := range nodes {
			if _, _, l, ok := groupView(n, "qm"); ok && l != "" {
				leaderName = l
				return nil
			}
		}
		return errors.New("none")
	})
	ch = servertest.Channel(t, byName[leaderName].Addr)
	const total = 20
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, total))
	for i := range total {
		if err := ch.PublishWithContext(context.Background(), "", "qm", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range total {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("publish %d nacked", c.DeliveryTag)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no confirm within 30 s")
		}
	}

	// Add the outsider, asked of a node that is not a member either way: the node that is
	// neither the outsider nor qm's first member.
	asker := nodes[0]
	for _, n := range nodes {
		if n != outsider && n.Name != st.Members[0] {
			asker = n
		}
	}
	if err := asker.Srv.AddQuorumMember("/", "qm", outsider.Name); err != nil {
		t.Fatalf("adding %s through %s: %v", outsider.Name, asker.Name, err)
	}
	all := []string{"n1", "n2", "n3"}
	servertest.Eventually(t, outsider.Name+" a caught-up voter of qm's group", func() error {
		msgs, members, leader, ok := groupView(outsider, "qm")
		if !ok || msgs != total || !slices.Equal(members, all) || leader == "" {
			return fmt.Errorf("runs a member %v, %d messages, members %v, leader %q", ok, msgs, members, leader)
		}
		_, lm, _, ok := groupView(byName[leader], "qm")
		if !ok || !slices.Equal(lm, all) {
			return fmt.Errorf("the leader %s's configuration %v", leader, lm)
		}
		return nil
	})
	for _, n := range nodes {
		if st, _ := n.Srv.QuorumQueueStatus("/", "qm"); len(st.Members) != 3 {
			t.Fatalf("%s lists qm's members as %v, want all three", n.Name, st.Members)
		}
	}

	// Delete the leader's node: the two others elect a leader and it keeps every message.
	_, _, oldLeader, _ := groupView(outsider, "qm")
	if err := outsider.Srv.DeleteQuorumMember("/", "qm", oldLeader); err != nil {
		t.Fatalf("deleting %s: %v", oldLeader, err)
	}
	rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == oldLeader })
	removed := byName[oldLeader]
	servertest.Eventually(t, "qm led by one of "+fmt.Sprint(rest)+" without "+oldLeader, func() error {
		if _, _, _, ok := groupView(removed, "qm"); ok {
			return errors.New(oldLeader + " still runs a member of the group")
		}
		for _, name := range rest {
			msgs, members, leader, ok := groupView(byName[name], "qm")
			if !ok || msgs != total || !slices.Equal(members, rest) || !slices.Contains(rest, leader) {
				return fmt.Errorf("%s: runs a member %v, %d messages, members %v, leader %q", name, ok, msgs, members, leader)
			}
		}
		return nil
	})
	rec, ok := removed.Node.QueueRecord("/", "qm")
	if !ok {
		t.Fatalf("%s has no record of qm", oldLeader)
	}
	q := vhost.ReplicatedQueueID(rec.Group)
	logs, err := removed.Store.RaftLog(q)
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := logs.LastIndex(); last != 0 {
		t.Fatalf("%s, no longer a member, keeps qm's Raft log up to %d", oldLeader, last)
	}
	if ix, err := removed.Store.IndexQueue(q); err != nil || ix.Count != 0 {
		t.Fatalf("%s, no longer a member, keeps %d of qm's records (%v)", oldLeader, ix.Count, err)
	}

	// Consume everything through the removed node: it forwards to the leader.
	rch := servertest.Channel(t, removed.Addr)
	deliveries, err := rch.Consume("qm", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < total {
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
			t.Fatalf("%d of %d messages consumed through %s within 30 s", len(seen), total, oldLeader)
		}
	}

	// Refused changes.
	srv := nodes[0].Srv
	var me *server.QuorumMemberError
	if err := srv.AddQuorumMember("/", "qm", "n9"); !errors.Is(err, server.ErrNoSuchNode) {
		t.Errorf("adding a node outside the cluster: %v, want ErrNoSuchNode", err)
	}
	if err := srv.AddQuorumMember("/", "qm", rest[0]); !errors.As(err, &me) {
		t.Errorf("adding a member again: %v, want a QuorumMemberError", err)
	}
	if err := srv.DeleteQuorumMember("/", "qm", oldLeader); !errors.As(err, &me) {
		t.Errorf("deleting a node that is not a member: %v, want a QuorumMemberError", err)
	}
	if err := srv.AddQuorumMember("/", "classic", oldLeader); !errors.As(err, &me) {
		t.Errorf("adding a member to a classic queue: %v, want a QuorumMemberError", err)
	}
	if err := srv.AddQuorumMember("/", "nope", oldLeader); err == nil {
		t.Error("adding a member to a queue that does not exist succeeded")
	}
	if _, err := srv.GrowQuorumQueues(oldLeader, "", "", "some"); !errors.As(err, &me) {
		t.Errorf("grow with strategy 'some': %v, want a QuorumMemberError", err)
	}
}
