package cluster

import (
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/store"
)

type testNode struct {
	dir string
	st  *store.Store
	n   *Node
	// app is the node's model (kept across restarts, as a broker's is on disk); nil for none.
	app *fakeApplier
	// snapshotThreshold, trailingLogs and snapshotInterval override the metadata group's
	// (0: defaults).
	snapshotThreshold, trailingLogs uint64
	snapshotInterval                time.Duration
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (tn *testNode) start(t *testing.T, c configs.Cluster) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: tn.dir, NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := c.Self()
	c.Listen = self.Addr
	n, err := Start(Config{Cluster: c, Secret: []byte("0123456789abcdef"), DataDir: tn.dir, Store: st, Logger: zerolog.Nop(),
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		Applier: tn.applier(), SnapshotThreshold: tn.snapshotThreshold, TrailingLogs: tn.trailingLogs,
		SnapshotInterval: tn.snapshotInterval})
	if err != nil {
		t.Fatal(err)
	}
	tn.st, tn.n = st, n
}

func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	if err := tn.n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tn.st.Close(); err != nil {
		t.Fatal(err)
	}
	tn.n = nil
}

// agreedLeader waits until every running node names the same leader, which is one of them.
func agreedLeader(t *testing.T, nodes []*testNode) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		leader, ok := "", true
		running := map[string]bool{}
		for _, tn := range nodes {
			if tn.n != nil {
				running[tn.n.cfg.Cluster.NodeName] = true
			}
		}
		for _, tn := range nodes {
			if tn.n == nil {
				continue
			}
			s := tn.n.Status()
			if s.Leader == "" || (leader != "" && s.Leader != leader) {
				ok = false
				break
			}
			leader = s.Leader
		}
		if ok && running[leader] {
			return leader
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the nodes did not agree on a leader within 15s")
	return ""
}

// TestClusterFormsElectsAndRejoins: three nodes started with the same peers form one
// cluster of three voters; when the leader stops, the other two elect one of themselves; the
// old leader restarted on its data rejoins (no second bootstrap) and follows the new leader.
func TestClusterFormsElectsAndRejoins(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	var peers []configs.Peer
	nodes := make([]*testNode, 3)
	for i, name := range names {
		peers = append(peers, configs.Peer{Name: name, Addr: freeAddr(t)})
		nodes[i] = &testNode{dir: t.TempDir()}
	}
	cfg := func(name string) configs.Cluster { return configs.Cluster{NodeName: name, Peers: peers} }
	for i, tn := range nodes {
		tn.start(t, cfg(names[i]))
	}
	defer func() {
		for _, tn := range nodes {
			if tn.n != nil {
				tn.stop(t)
			}
		}
	}()
	leader := agreedLeader(t, nodes)
	for _, tn := range nodes {
		s := tn.n.Status()
		if len(s.Members) != 3 || tn.n.Rejoined {
			t.Fatalf("%s: members %+v, rejoined %v", s.Node, s.Members, tn.n.Rejoined)
		}
	}
	var old *testNode
	for i, tn := range nodes {
		if names[i] == leader {
			old = tn
			tn.stop(t)
		}
	}
	next := agreedLeader(t, nodes)
	if next == leader {
		t.Fatalf("the stopped leader %s is still named leader", leader)
	}
	old.start(t, cfg(leader))
	if !old.n.Rejoined {
		t.Fatal("a node restarted on its data bootstrapped again")
	}
	if got := agreedLeader(t, nodes); got == "" {
		t.Fatal("no leader after the rejoin")
	}
	if s := old.n.Status(); s.State != "Follower" || len(s.Members) != 3 {
		t.Fatalf("the rejoined node: %+v", s)
	}
}
