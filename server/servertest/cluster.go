package servertest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/store"
)

// ClusterMember is one in-process broker of a test cluster: its own store in a temporary
// directory, AMQP on a loopback port, its cluster node.
type ClusterMember struct {
	Name  string
	Srv   *server.Server
	Node  *cluster.Node
	Store *store.Store
	// Addr is the AMQP listener's host:port (URL(Addr) to dial it).
	Addr string
	// Stop stops the member (cluster node, broker, store); it runs at the end of the test too.
	Stop func()
}

// Cluster starts brokers named names as one cluster on 127.0.0.1, with Raft timings short
// enough for tests; it does not wait for a leader.
func Cluster(t testing.TB, names ...string) []*ClusterMember {
	t.Helper()
	var peers []configs.Peer
	var lns []net.Listener
	for _, name := range names {
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
	var out []*ClusterMember
	for _, p := range peers {
		out = append(out, startMember(t, p, peers))
	}
	return out
}

func startMember(t testing.TB, self configs.Peer, peers []configs.Peer) *ClusterMember {
	t.Helper()
	log := zerolog.Nop()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir, NoSync: true, Logger: log})
	if err != nil {
		t.Fatalf("%s: opening the store: %v", self.Name, err)
	}
	srv := New(t, server.Config{Logger: log, Store: st, MemoryLimit: 1 << 40})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Start(cluster.Config{Cluster: configs.Cluster{NodeName: self.Name, Peers: peers, Listen: self.Addr},
		DataDir: dir, Store: st, Logger: log, Applier: srv,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("starting %s's cluster node: %v", self.Name, err)
	}
	// As the broker does: clients of any node reach the queues the others hold.
	stopForwarding, err := srv.StartForwarding(n, forward.Options{Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("%s: %v", self.Name, err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(context.Background(), ln)
	}()
	m := &ClusterMember{Name: self.Name, Srv: srv, Node: n, Store: st, Addr: ln.Addr().String()}
	var once sync.Once
	m.Stop = func() {
		once.Do(func() {
			if err := stopForwarding(); err != nil {
				t.Errorf("%s: stopping forwarding: %v", self.Name, err)
			}
			if err := n.Close(); err != nil {
				t.Errorf("%s: closing the cluster node: %v", self.Name, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("%s: stopping the broker: %v", self.Name, err)
			}
			<-served
			if err := st.Close(); err != nil {
				t.Errorf("%s: closing the store: %v", self.Name, err)
			}
		})
	}
	t.Cleanup(m.Stop)
	return m
}
