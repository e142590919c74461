package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warrenmq/warren/configs"
)

// Membership changes (`warren ctl cluster join|leave`) are Raft configuration changes of the
// metadata group, made by its leader: a node added as a voter gets the log (or a snapshot)
// from the leader and catches up; a node removed stops being asked for votes and entries.

// membershipTimeout bounds a configuration change: the leader must commit it on a majority.
const membershipTimeout = 30 * time.Second

// NotLeaderError is returned by a change asked of a node that does not lead the metadata
// group; Leader names the one that does ("" while there is none).
type NotLeaderError struct{ Leader string }

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "the cluster has no leader now (no majority of its members is reachable); try again"
	}
	return fmt.Sprintf("this node does not lead the cluster: ask %s", e.Leader)
}

// ErrUnknownMember is returned when removing a node the membership does not have.
var ErrUnknownMember = errors.New("no such member")

// AddMember adds the node name, reachable at addr (host:port of its cluster listener), to the
// membership as a voter. The node must run with a name outside cluster-peers and
// cluster-advertise set to addr (configs.Cluster.Joining). Adding a member it already has at
// the same address changes nothing.
func (n *Node) AddMember(name, addr string) error {
	p, err := configs.ParsePeer(name + "@" + addr)
	if err != nil {
		return err
	}
	if err := n.leading(); err != nil {
		return err
	}
	f := n.meta.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: reading the membership: %w", err)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != p.Name && string(s.Address) == p.Addr {
			return fmt.Errorf("cluster: %s is the address of member %s", p.Addr, s.ID)
		}
	}
	if err := n.meta.AddVoter(raft.ServerID(p.Name), raft.ServerAddress(p.Addr), 0, membershipTimeout).Error(); err != nil {
		return n.changeFailed("adding "+p.String(), err)
	}
	n.log.Info().Str("member", p.Name).Str("address", p.Addr).Msg("cluster: member added")
	return nil
}

// RemoveMember removes the node name from the membership. A running node that is removed
// keeps its data but takes no part in the cluster any more; removing the leader itself makes
// the others elect a new one.
func (n *Node) RemoveMember(name string) error {
	if err := n.leading(); err != nil {
		return err
	}
	f := n.meta.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: reading the membership: %w", err)
	}
	found := false
	for _, s := range f.Configuration().Servers {
		found = found || string(s.ID) == name
	}
	if !found {
		return fmt.Errorf("cluster: %q: %w", name, ErrUnknownMember)
	}
	if err := n.meta.RemoveServer(raft.ServerID(name), 0, membershipTimeout).Error(); err != nil {
		return n.changeFailed("removing "+name, err)
	}
	n.log.Info().Str("member", name).Msg("cluster: member removed")
	return nil
}

// leading is nil on the metadata group's leader and a NotLeaderError elsewhere.
func (n *Node) leading() error {
	if n.meta.State() == raft.Leader {
		return nil
	}
	_, id := n.meta.LeaderWithID()
	return &NotLeaderError{Leader: string(id)}
}

func (n *Node) changeFailed(what string, err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		_, id := n.meta.LeaderWithID()
		return &NotLeaderError{Leader: string(id)}
	}
	return fmt.Errorf("cluster: %s: %w", what, err)
}
