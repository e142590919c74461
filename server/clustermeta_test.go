package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/vhost"
	"github.com/warrenmq/warren/store"
)

// metaNode is one in-process cluster member: a broker with its store and cluster node.
type metaNode struct {
	name, dir string
	peers     []configs.Peer
	st        *store.Store
	srv       *Server
	n         *cluster.Node
	// quorum receives the node's OnQuorumQueue calls.
	quorum chan QuorumQueueChange
}

func (m *metaNode) start(t *testing.T) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: m.dir, NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	m.quorum = make(chan QuorumQueueChange, 16)
	srv := New(Config{Store: st, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		OnQuorumQueue: func(c QuorumQueueChange) { m.quorum <- c }})
	srv.proposeTimeout = 3 * time.Second
	srv.downAfter = 2 * time.Second
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	c := configs.Cluster{NodeName: m.name, Peers: m.peers}
	self, _ := c.Self()
	c.Listen = self.Addr
	n, err := cluster.Start(cluster.Config{Cluster: c, DataDir: m.dir, Store: st, Logger: zerolog.Nop(), Applier: srv,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		SnapshotThreshold: 8, TrailingLogs: 4})
	if err != nil {
		t.Fatal(err)
	}
	m.st, m.srv, m.n = st, srv, n
}

func (m *metaNode) stop(t *testing.T) {
	t.Helper()
	if err := m.n.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.st.Close(); err != nil {
		t.Fatal(err)
	}
	m.n = nil
}

func startMetaCluster(t *testing.T) []*metaNode {
	t.Helper()
	var peers []configs.Peer
	var lns []net.Listener
	for _, name := range []string{"n1", "n2", "n3"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, configs.Peer{Name: name, Addr: ln.Addr().String()})
		lns = append(lns, ln) // held until every port is picked: no two nodes get the same one
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	var nodes []*metaNode
	for _, p := range peers {
		m := &metaNode{name: p.Name, dir: t.TempDir(), peers: peers}
		m.start(t)
		nodes = append(nodes, m)
	}
	t.Cleanup(func() {
		for _, m := range nodes {
			if m.n != nil {
				m.stop(t)
			}
		}
	})
	return nodes
}

// eventually retries check until it returns nil, for 30 s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exchangeNames(s *Server, vh string) []string {
	var out []string
	if v := s.vhost(vh); v != nil {
		for _, x := range v.Exchanges() {
			out = append(out, x.Name)
		}
	}
	return out
}

// TestClusterNodeCatchesUpFromSnapshot: a broker that was down while the others created a
// vhost, a user, a policy, exchanges, a queue and a binding and deleted an exchange it had,
// and compacted their log, comes back with exactly that model: the deleted exchange is gone,
// the user logs in with the password set on another node, the queue is listed, marked as
// held by the node that declared it, and bound.
func TestClusterNodeCatchesUpFromSnapshot(t *testing.T) {
	nodes := startMetaCluster(t)
	a, down := nodes[0], nodes[2]
	x := func(name string) exchange.Definition {
		return exchange.Definition{Name: name, Kind: "topic", Durable: true}
	}
	if _, err := a.srv.DeclareExchangeAs("guest", "/", x("old")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the exchange on the third node", func() error {
		if !slices.Contains(exchangeNames(down.srv, "/"), "old") {
			return errors.New("missing")
		}
		return nil
	})
	downAt := down.n.Status().AppliedIndex
	down.stop(t)

	if _, err := a.srv.PutVhost("v2", "", nil, "guest"); err != nil {
		t.Fatal(err)
	}
	pw := "s3cret"
	if _, err := nodes[1].srv.PutUser("bob", UserChange{Password: &pw, Tags: []string{"management"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.srv.PutPolicy("/", "ttl", PolicyChange{Pattern: "^q", Definition: map[string]any{"message-ttl": 60000}}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := nodes[i%2].srv.DeclareExchangeAs("guest", "/", x(fmt.Sprintf("x%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[1].srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "q1", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.BindAs("guest", "/", binding.Binding{Source: "x3", Dest: binding.Destination{Kind: binding.DestQueue, Name: "q1"}, RoutingKey: "k.#"}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.DeleteExchangeAs("guest", "/", "old", false); err != nil {
		t.Fatal(err)
	}
	for _, m := range nodes[:2] {
		if err := m.n.Snapshot(); err != nil {
			t.Logf("%s: snapshot: %v", m.name, err) // one may have just been taken
		}
	}

	down.start(t)
	eventually(t, "the restarted node's model", func() error {
		names := exchangeNames(down.srv, "/")
		if slices.Contains(names, "old") || !slices.Contains(names, "x11") {
			return fmt.Errorf("exchanges %v", names)
		}
		if down.srv.vhost("v2") == nil {
			return errors.New("no vhost v2")
		}
		if _, ok := down.srv.User("bob"); !ok {
			return errors.New("no user bob")
		}
		if !slices.ContainsFunc(down.srv.vhost("/").Bindings(), func(b binding.Binding) bool { return b.Source == "x3" }) {
			return errors.New("no binding from x3")
		}
		return nil
	})
	// raft records the snapshot's index only after the FSM restored it, so the model can be
	// seen a moment before the status says where it came from.
	eventually(t, "the restarted node's snapshot index", func() error {
		if st := down.n.Status(); st.SnapshotIndex <= downAt {
			return fmt.Errorf("the node caught up from the log (snapshot index %d, down at %d): the test did not exercise a snapshot", st.SnapshotIndex, downAt)
		}
		return nil
	})
	if _, err := down.srv.Login("bob", pw, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}); err != nil {
		t.Fatalf("bob's login on the restarted node: %v", err)
	}
	if !slices.ContainsFunc(down.srv.Policies(), func(p PolicyInfo) bool { return p.Name == "ttl" }) {
		t.Fatalf("policies on the restarted node: %+v", down.srv.Policies())
	}
	q, err := down.srv.vhost("/").QueueFor(nil, "q1")
	if err != nil {
		t.Fatal(err)
	}
	if q.Remote() != "n2" {
		t.Fatalf("q1 on n3 is held by %q, want n2 (the declaring node)", q.Remote())
	}
	if !slices.ContainsFunc(down.srv.vhost("/").Bindings(), func(b binding.Binding) bool {
		return b.Source == "x3" && b.Dest.Name == "q1" && b.RoutingKey == "k.#"
	}) {
		t.Fatal("the binding x3 -> q1 is missing on the restarted node")
	}
}

// TestClusterChangeWithoutMajority: with two of three nodes down, a declaration on the last
// one is refused with 541 and Khepri's text once the wait for a leader ends, and the
// management API's error is a NoQuorumError (503); a redeclaration of what exists needs no
// majority.
func TestClusterChangeWithoutMajority(t *testing.T) {
	nodes := startMetaCluster(t)
	last := nodes[0]
	if _, err := last.srv.DeclareExchangeAs("guest", "/", exchange.Definition{Name: "kept", Kind: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	nodes[1].stop(t)
	nodes[2].stop(t)
	_, err := last.srv.DeclareExchangeAs("guest", "/", exchange.Definition{Name: "new", Kind: "direct", Durable: true})
	var nq *NoQuorumError
	var ce *amqpwire.ConnectionError
	if !errors.As(err, &nq) || !errors.As(err, &ce) || ce.Code != 541 ||
		ce.Text != "INTERNAL_ERROR - failed to declare exchange 'new' in vhost '/' because the operation timed out" {
		t.Fatalf("declare without a majority: %v", err)
	}
	if _, err := last.srv.DeclareExchangeAs("guest", "/", exchange.Definition{Name: "kept", Kind: "direct", Durable: true}); err != nil {
		t.Fatalf("redeclaring an existing exchange without a majority: %v", err)
	}
}

// TestClusterQuorumQueueRecord: a quorum queue declared with x-quorum-initial-group-size 2
// gets the same two members and Raft group id on every node; every node's quorum hook is
// told so, every node (the one outside the group too) names the members' leader as the
// queue's holder, and a delete tells every hook again.
func TestClusterQuorumQueueRecord(t *testing.T) {
	nodes := startMetaCluster(t)
	args, err := amqpwire.NewTable(map[string]any{"x-queue-type": "quorum", "x-quorum-initial-group-size": int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "qq", Durable: true, Args: args}); err != nil {
		t.Fatal(err)
	}
	var members []string
	var group uint64
	for _, m := range nodes {
		var c QuorumQueueChange
		select {
		case c = <-m.quorum:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the quorum hook was not called", m.name)
		}
		if c.Name != "qq" || c.Deleted || len(c.Members) != 2 || c.ID == 0 || c.Group == 0 {
			t.Fatalf("%s: hook got %+v", m.name, c)
		}
		if members == nil {
			members, group = c.Members, c.Group
		} else if !slices.Equal(members, c.Members) || group != c.Group {
			t.Fatalf("%s: members %v group %d, another node has %v group %d", m.name, c.Members, c.Group, members, group)
		}
		q, err := m.srv.vhost("/").QueueFor(nil, "qq")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(c.Members, m.name) && !slices.Contains(c.Members, q.Remote()) {
			t.Fatalf("%s: not a member, but the queue's holder is %q, not one of the members %v", m.name, q.Remote(), c.Members)
		}
	}
	// The members elect a leader, which holds the queue; the other member names it, and so
	// does the node outside the group, told through the metadata group (OpQueueLeader).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var holders []string
		for _, m := range nodes {
			q, _ := m.srv.vhost("/").QueueFor(nil, "qq")
			h := q.Remote()
			if h == "" {
				h = m.name
			}
			holders = append(holders, h)
		}
		if slices.Contains(members, holders[0]) && holders[0] == holders[1] && holders[1] == holders[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes do not agree on the queue's holder among its members %v: %v", members, holders)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := nodes[2].srv.DeleteQueueAs("guest", "/", "qq", false, false); err != nil {
		t.Fatal(err)
	}
	for _, m := range nodes {
		select {
		case c := <-m.quorum:
			if c.Name != "qq" || !c.Deleted {
				t.Fatalf("%s: hook got %+v after the delete", m.name, c)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the quorum hook was not told of the delete", m.name)
		}
	}
}

// TestClusterRefusesBadInputBeforeProposing: a queue declared with a bad argument on a
// follower gets the model's 406, a bad permission pattern or policy key the API's refusal,
// without anything written to the metadata log; passwords, set
// through the API or in an imported document, reach every node (the user logs in elsewhere)
// but never the log.
func TestClusterRefusesBadInputBeforeProposing(t *testing.T) {
	nodes := startMetaCluster(t)
	var leader *metaNode
	eventually(t, "a leader", func() error {
		for _, m := range nodes {
			if m.n.Status().State == "Leader" {
				leader = m
				return nil
			}
		}
		return errors.New("none")
	})
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	before := leader.n.Status().LastIndex
	args, err := amqpwire.NewTable(map[string]any{"x-max-length": "ten"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = follower.srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "bad", Durable: true, Args: args})
	var ce *amqpwire.ChannelError
	if !errors.As(err, &ce) || ce.Code != amqpwire.CodePreconditionFailed {
		t.Fatalf("declare with x-max-length \"ten\": %v, want 406", err)
	}
	_, perr := follower.srv.PutPermission("/", "guest", "(", ".*", ".*")
	_, polErr := follower.srv.PutPolicy("/", "p", PolicyChange{Pattern: ".*", Definition: map[string]any{"no-such-key": 1}})
	for what, err := range map[string]error{"permission": perr, "policy": polErr} {
		var ref *RefusedError
		if !errors.As(err, &ref) {
			t.Fatalf("a bad %s: %v, want a refusal (400)", what, err)
		}
	}
	if after := leader.n.Status().LastIndex; after != before {
		t.Fatalf("refused changes were proposed: log %d -> %d", before, after)
	}

	pw, imported := "api-Pa55", "imported-Pa55"
	if _, err := follower.srv.PutUser("dave", UserChange{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	doc := `{"users":[{"name":"carol","password":"` + imported + `","tags":""}],"permissions":[{"user":"carol","vhost":"/","configure":".*","write":".*","read":".*"}]}`
	if err := follower.srv.ImportDefinitions([]byte(doc), "", "guest"); err != nil {
		t.Fatal(err)
	}
	other := nodes[2]
	if other == leader || other == follower {
		other = leader
	}
	for user, password := range map[string]string{"dave": pw, "carol": imported} {
		eventually(t, user+" logs in on "+other.name, func() error {
			_, err := other.srv.Login(user, password, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)})
			return err
		})
	}
	logs, err := leader.st.RaftLog(cluster.MetaGroup)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := logs.FirstIndex()
	last, _ := logs.LastIndex()
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			continue
		}
		text := l.Data
		var c cluster.Command
		var a importArgs
		if json.Unmarshal(l.Data, &c) == nil && c.Op == cluster.OpImport && json.Unmarshal(c.Body, &a) == nil {
			text = append(text, a.Data...) // base64 in the entry
		}
		for _, secret := range []string{pw, imported} {
			if bytes.Contains(text, []byte(secret)) {
				t.Fatalf("the metadata log holds a plain-text password at index %d: %s", i, l.Data)
			}
		}
	}
}

// TestClusterExpiryIsReplicated: a durable queue with x-expires that expires unused on the
// node that holds it is deleted on every node, with its record.
func TestClusterExpiryIsReplicated(t *testing.T) {
	nodes := startMetaCluster(t)
	args, err := amqpwire.NewTable(map[string]any{"x-expires": int32(300)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].srv.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "short", Durable: true, Args: args}); err != nil {
		t.Fatal(err)
	}
	for _, m := range nodes {
		eventually(t, m.name+": the expired queue is gone", func() error {
			if m.srv.vhost("/").HasQueue("short") {
				return errors.New("still there")
			}
			if _, ok := m.n.QueueRecord("/", "short"); ok {
				return errors.New("its record is still there")
			}
			return nil
		})
	}
}
