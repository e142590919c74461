package quorum

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// MemberStatus is one replica as this node sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	// Voter: the member counts toward the majority; false while a new member catches up.
	Voter bool `json:"voter"`
	// Known: this node knows whether the member is online. The leader knows every member; a
	// follower only itself and the leader.
	Known  bool `json:"known"`
	Online bool `json:"online"`
	// MatchIndex and Lag (entries behind the leader's last index) are the leader's view of
	// a follower's log; 0 elsewhere.
	MatchIndex uint64 `json:"match_index"`
	Lag        uint64 `json:"lag"`
}

// Status is a quorum queue's replication state on this node, for the management API.
type Status struct {
	State         string         `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader        string         `json:"leader"`
	LeaderAddress string         `json:"leader_address"`
	Term          uint64         `json:"term"`
	LastIndex     uint64         `json:"last_index"`
	CommitIndex   uint64         `json:"commit_index"`
	AppliedIndex  uint64         `json:"applied_index"`
	SnapshotIndex uint64         `json:"snapshot_index"` // the last snapshot's index; 0 before the first
	Messages      int            `json:"messages"`
	Bytes         int64          `json:"message_bytes"`
	Members       []MemberStatus `json:"members"`
}

// LeaderID returns the name and address of the group's leader as this node knows it ("" when
// there is none).
func (g *Group) LeaderID() (name, address string) {
	addr, id := g.r.LeaderWithID()
	return string(id), string(addr)
}

// Status reports the group's state on this node.
func (g *Group) Status() Status {
	r := g.r
	addr, leader := r.LeaderWithID()
	s := Status{State: r.State().String(), Leader: string(leader), LeaderAddress: string(addr),
		LastIndex: r.LastIndex(), CommitIndex: r.CommitIndex(), AppliedIndex: r.AppliedIndex()}
	stats := r.Stats()
	s.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	s.SnapshotIndex, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	s.Messages, s.Bytes = g.Committed()
	isLeader := r.State() == raft.Leader
	self := raft.ServerID(g.cfg.Self)
	recent := func(t time.Time) bool { return !t.IsZero() && time.Since(t) <= g.timing.HeartbeatTimeout }
	f := r.GetConfiguration()
	if f.Error() != nil {
		return s
	}
	for _, srv := range f.Configuration().Servers {
		m := MemberStatus{Name: string(srv.ID), Address: string(srv.Address), Leader: srv.ID == leader, Voter: srv.Suffrage == raft.Voter}
		switch {
		case srv.ID == self:
			m.Known, m.Online = true, true
		case isLeader:
			match, contact := g.trans.state(srv.ID)
			m.Known, m.Online, m.MatchIndex = true, recent(contact), match
			if s.LastIndex > match {
				m.Lag = s.LastIndex - match
			}
		case srv.ID == leader:
			m.Known, m.Online = true, recent(r.LastContact())
		}
		s.Members = append(s.Members, m)
	}
	return s
}
