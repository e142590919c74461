package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/cluster/forward"
)

// statsLocal is a node's queues as far as a passive declare sees them: one queue, named
// after the node, with as many messages as the node's name is long.
type statsLocal struct{ node string }

func (l statsLocal) Publish(_, _ string, _ *forward.Message, _ bool, done func(error, func())) {
	done(errors.New("not in this test"), nil)
}
func (l statsLocal) Consume(string, string, forward.ConsumeOptions, forward.Sink) (forward.LocalConsumer, error) {
	return nil, errors.New("not in this test")
}
func (l statsLocal) Get(string, string, bool) (*forward.Delivery, forward.Settler, uint32, error) {
	return nil, nil, 0, errors.New("not in this test")
}
func (l statsLocal) Purge(string, string) (uint32, error) { return 0, errors.New("not in this test") }
func (l statsLocal) Stats(vhost, queue string) (forward.Stats, error) {
	if queue != "q-"+l.node {
		return forward.Stats{}, forward.NotFound(vhost, queue, 0, 0)
	}
	return forward.Stats{Messages: uint32(len(l.node))}, nil
}

func (l statsLocal) Node() ([]byte, error) { return []byte(`{"name":"` + l.node + `"}`), nil }

// TestForwardingBetweenNodes: two cluster nodes reach each other's queues by member name
// over the cluster transport, and each answers on its own queues.
func TestForwardingBetweenNodes(t *testing.T) {
	names := []string{"n1", "node2"}
	var peers []configs.Peer
	nodes := make([]*testNode, len(names))
	for i, name := range names {
		peers = append(peers, configs.Peer{Name: name, Addr: freeAddr(t)})
		nodes[i] = &testNode{dir: t.TempDir()}
	}
	fwd := make([]*Forwarding, len(names))
	for i, tn := range nodes {
		tn.start(t, configs.Cluster{NodeName: names[i], Peers: peers})
		f, err := tn.n.StartForwarding(statsLocal{node: names[i]}, forward.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fwd[i] = f
	}
	defer func() {
		for i, tn := range nodes {
			if err := fwd[i].Close(); err != nil {
				t.Error(err)
			}
			tn.stop(t)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, tn := range nodes {
		other := names[1-i]
		addr, err := tn.n.PeerAddr(other)
		if err != nil {
			t.Fatal(err)
		}
		st, err := fwd[i].Client.Stats(ctx, addr, "/", "q-"+other)
		if err != nil || st.Messages != uint32(len(other)) {
			t.Fatalf("%s asking %s: %+v, %v", names[i], other, st, err)
		}
	}
}
