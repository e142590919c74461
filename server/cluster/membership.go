package cluster

import (
	"bytes"
	"context"
	"encoding/json"
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

// Membership changes asked of a follower go to the leader as proposals (metapropose.go) of
// these ops, which the leader makes as configuration changes instead of log commands.
const (
	opMemberAdd    = "member.add"
	opMemberRemove = "member.remove"
)

// AddMember adds the node name, reachable at addr (host:port of its cluster listener), to the
// membership as a voter. The node must run with a name outside cluster-peers and
// cluster-advertise set to addr (configs.Cluster.Joining). Adding a member it already has at
// the same address changes nothing. A follower hands the change to the leader.
func (n *Node) AddMember(name, addr string) error {
	p, err := configs.ParsePeer(name + "@" + addr)
	if err != nil {
		return err
	}
	if n.leading() != nil {
		return n.proposeMembership(Command{Op: opMemberAdd, Name: p.Name, Body: mustJSON(p.Addr)})
	}
	return n.addMember(p)
}

func (n *Node) addMember(p configs.Peer) error {
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
// the others elect a new one. A follower hands the change to the leader.
func (n *Node) RemoveMember(name string) error {
	if n.leading() != nil {
		return n.proposeMembership(Command{Op: opMemberRemove, Name: name})
	}
	return n.removeMember(name)
}

func (n *Node) removeMember(name string) error {
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

// proposeMembership sends a membership change to the leader (retrying while leadership
// moves) and waits until this node's configuration has it.
func (n *Node) proposeMembership(c Command) error {
	c.V = CommandVersion
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", c.Op, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), membershipTimeout)
	defer cancel()
	for {
		_, applyErr, err := n.proposeOnce(ctx, data)
		if err == nil {
			if applyErr != nil {
				return applyErr
			}
			return n.waitMembership(ctx, c)
		}
		select {
		case <-ctx.Done():
			return &NotLeaderError{}
		case <-n.closed:
			return fmt.Errorf("cluster: %s: node shutting down", c.Op)
		case <-time.After(proposeRetry):
		}
	}
}

// waitMembership waits until this node's Raft configuration has the change c made.
func (n *Node) waitMembership(ctx context.Context, c Command) error {
	for {
		if f := n.meta.GetConfiguration(); f.Error() == nil {
			has := false
			for _, s := range f.Configuration().Servers {
				has = has || string(s.ID) == c.Name
			}
			if has == (c.Op == opMemberAdd) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s %s was made by the leader but has not reached this node yet: %w", c.Op, c.Name, ctx.Err())
		case <-time.After(proposeRetry):
		}
	}
}

// changeMembership makes, on the leader, a membership change a follower proposed; ok is false
// for any other command. idx is the configuration change's log index.
func (n *Node) changeMembership(data []byte) (idx uint64, applyErr, err error, ok bool) {
	if !bytes.Contains(data, []byte(`"op":"member.`)) {
		return 0, nil, nil, false
	}
	var c Command
	if json.Unmarshal(data, &c) != nil || (c.Op != opMemberAdd && c.Op != opMemberRemove) {
		return 0, nil, nil, false
	}
	switch c.Op {
	case opMemberAdd:
		var addr string
		if err := json.Unmarshal(c.Body, &addr); err != nil {
			return 0, fmt.Errorf("cluster: %s: %w", c.Op, err), nil, true
		}
		p, perr := configs.ParsePeer(c.Name + "@" + addr)
		if perr != nil {
			return 0, perr, nil, true
		}
		applyErr = n.addMember(p)
	case opMemberRemove:
		applyErr = n.removeMember(c.Name)
	}
	var nl *NotLeaderError
	if errors.As(applyErr, &nl) {
		return 0, nil, applyErr, true // the leader moved: the follower asks again
	}
	return n.meta.LastIndex(), applyErr, nil, true
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
