package raftmux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

func newMux(t *testing.T, node string, secret string) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(Config{Listener: ln, Node: node, Secret: []byte(secret), Logger: zerolog.Nop()})
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// listFSM keeps the commands it applies.
type listFSM struct {
	mu  sync.Mutex
	got []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	f.got = append(f.got, string(l.Data))
	f.mu.Unlock()
	return nil
}
func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("none") }
func (f *listFSM) Restore(io.ReadCloser) error         { return errors.New("none") }
func (f *listFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// startGroup runs one raft group with a member on each mux, over their layers.
func startGroup(t *testing.T, group uint64, muxes []*Mux) ([]*raft.Raft, []*listFSM) {
	t.Helper()
	var servers []raft.Server
	for _, m := range muxes {
		servers = append(servers, raft.Server{ID: raft.ServerID(m.cfg.Node), Address: raft.ServerAddress(m.Addr())})
	}
	var rafts []*raft.Raft
	var fsms []*listFSM
	for _, m := range muxes {
		layer, err := m.Layer(group)
		if err != nil {
			t.Fatal(err)
		}
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: layer, MaxPool: 2, Timeout: 5 * time.Second})
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(m.cfg.Node)
		conf.HeartbeatTimeout, conf.ElectionTimeout = 200*time.Millisecond, 200*time.Millisecond
		conf.LeaderLeaseTimeout, conf.CommitTimeout = 100*time.Millisecond, 5*time.Millisecond
		conf.LogOutput = io.Discard
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		fsm := &listFSM{}
		r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Shutdown().Error(); _ = trans.Close() })
		rafts, fsms = append(rafts, r), append(fsms, fsm)
	}
	return rafts, fsms
}

func leaderOf(t *testing.T, rafts []*raft.Raft) *raft.Raft {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader within 15s")
	return nil
}

// TestGroupsShareOneConnectionPerPeer: two Raft groups, each with a member on three nodes,
// elect leaders and replicate commands to every member over the nodes' muxes, while each
// node holds at most one outgoing connection per peer.
func TestGroupsShareOneConnectionPerPeer(t *testing.T) {
	muxes := []*Mux{newMux(t, "n1", "s3cret"), newMux(t, "n2", "s3cret"), newMux(t, "n3", "s3cret")}
	for _, group := range []uint64{1, 2} {
		rafts, fsms := startGroup(t, group, muxes)
		l := leaderOf(t, rafts)
		var f raft.ApplyFuture
		for i := 0; i < 50; i++ {
			f = l.Apply([]byte(fmt.Sprintf("g%d-%d", group, i)), 5*time.Second)
		}
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, fsm := range fsms {
			for fsm.count() < 50 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if fsm.count() != 50 {
				t.Fatalf("group %d: a member applied %d of 50 commands", group, fsm.count())
			}
		}
	}
	for _, m := range muxes {
		m.mu.Lock()
		n := len(m.sessions)
		m.mu.Unlock()
		if n > 2 {
			t.Errorf("%s has %d outgoing connections for 2 peers", m.cfg.Node, n)
		}
	}
}

// TestWrongSecretIsRefused: a node with another secret cannot open a stream to a group, and
// the refusal says why.
func TestWrongSecretIsRefused(t *testing.T) {
	good, bad := newMux(t, "n1", "right"), newMux(t, "intruder", "wrong")
	if _, err := good.Layer(1); err != nil {
		t.Fatal(err)
	}
	layer, err := bad.Layer(1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = layer.Dial(raft.ServerAddress(good.Addr()), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("Dial with the wrong secret = %v, want a refusal naming the secret", err)
	}
}

// TestStreamForAnUnknownGroupIsClosed: a stream naming a group the node does not serve is
// closed at once; the session stays up for the groups it does serve.
func TestStreamForAnUnknownGroupIsClosed(t *testing.T) {
	a, b := newMux(t, "a", "k"), newMux(t, "b", "k")
	served, err := b.Layer(7)
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.Layer(9)
	if err != nil {
		t.Fatal(err)
	}
	c, err := la.Dial(raft.ServerAddress(b.Addr()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a stream for group 9 stayed open on a node serving only group 7")
	}
	l7, err := a.Layer(7)
	if err != nil {
		t.Fatal(err)
	}
	c7, err := l7.Dial(raft.ServerAddress(b.Addr()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c7.Close()
	if _, err := c7.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	in, err := served.Accept()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("group 7 got %q, %v", buf, err)
	}
}
