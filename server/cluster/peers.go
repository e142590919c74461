package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Unreachable members, as the metadata group's leader sees them. hashicorp/raft tells
// observers of every failed heartbeat to a follower (with the follower's last contact) and of
// the first success after failures; the leader keeps, per follower, since when its
// heartbeats fail. The server uses it to find nodes that are down (their non-durable queues
// go, as in RabbitMQ: server/clustermeta_down.go).

// peerWatch is the failing followers of this node's leadership.
type peerWatch struct {
	mu      sync.Mutex
	failing map[string]time.Time
}

// watchPeers follows the metadata group's heartbeat observations until the node closes.
func (n *Node) watchPeers() {
	ch := make(chan raft.Observation, 256)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	n.meta.RegisterObserver(obs)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.meta.DeregisterObserver(obs)
		for {
			select {
			case o := <-ch:
				n.peers.observe(o.Data)
			case <-n.closed:
				return
			}
		}
	}()
}

func (w *peerWatch) observe(o any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch d := o.(type) {
	case raft.FailedHeartbeatObservation:
		if _, ok := w.failing[string(d.PeerID)]; !ok {
			since := d.LastContact
			if since.IsZero() {
				since = time.Now() // not reached once by this leadership
			}
			if w.failing == nil {
				w.failing = map[string]time.Time{}
			}
			w.failing[string(d.PeerID)] = since
		}
	case raft.ResumedHeartbeatObservation:
		delete(w.failing, string(d.PeerID))
	case raft.LeaderObservation:
		clear(w.failing) // a new leadership learns afresh
	}
}

// FailingPeers returns, while this node leads the metadata group, the members it has been
// failing to reach, each with its last contact; nil on a follower. A member that answers
// again leaves the list; so does one taken out of the membership.
func (n *Node) FailingPeers() map[string]time.Time {
	if n.meta.State() != raft.Leader {
		return nil
	}
	members := map[string]bool{}
	if f := n.meta.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			members[string(s.ID)] = true
		}
	}
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	var out map[string]time.Time
	for name, since := range n.peers.failing {
		if members[name] {
			if out == nil {
				out = map[string]time.Time{}
			}
			out[name] = since
		}
	}
	return out
}

// Done is closed when the node closes.
func (n *Node) Done() <-chan struct{} { return n.closed }
