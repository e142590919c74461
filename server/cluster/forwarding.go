package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/warrenmq/warren/server/cluster/forward"
)

// Forwarding is a node's share of forwarded queue traffic (server/cluster/forward): Client
// sends this node's clients' traffic to the nodes that run their queues; the server answers
// the other nodes on this node's queues.
type Forwarding struct {
	Client *forward.Client
	server *forward.Server
}

// StartForwarding serves the other nodes on local (the broker's own queues) and returns the
// client for this node's side, both on the node's cluster transport. Close it before the
// node.
func (n *Node) StartForwarding(local forward.Local, opts forward.Options) (*Forwarding, error) {
	layer, err := n.mux.Layer(forward.Group)
	if err != nil {
		return nil, fmt.Errorf("cluster: forwarding: %w", err)
	}
	return &Forwarding{Client: forward.NewClient(layer, n.log, opts), server: forward.Serve(layer, local, n.log, opts)}, nil
}

// Close breaks every forwarding stream: this node's forwarded consumers elsewhere end, and
// the other nodes' consumers here are removed with their unacked messages requeued.
func (f *Forwarding) Close() error {
	f.Client.Close()
	return f.server.Close()
}

// ErrStarting is returned by PeerAddr while the node is starting (before its metadata group
// runs, while the recovered model is attached).
var ErrStarting = errors.New("cluster: the node is starting")

// PeerAddr is the cluster address of the member named name, from the metadata group's
// configuration: where Forwarding.Client reaches that node.
func (n *Node) PeerAddr(name string) (string, error) {
	if n.meta == nil {
		return "", ErrStarting
	}
	f := n.meta.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("cluster: membership: %w", err)
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(name) {
			return string(s.Address), nil
		}
	}
	return "", errors.New("cluster: no member named " + name)
}
