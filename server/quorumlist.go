package server

import (
	"cmp"
	"slices"

	"github.com/warrenmq/warren/server/cluster/quorum"
)

// QuorumGroupStatus is this node's member of one quorum queue's Raft group, for the
// Prometheus endpoints.
type QuorumGroupStatus struct {
	Vhost, Queue string
	quorum.Status
}

// QuorumGroups reports every quorum queue group this node is a member of, sorted by vhost
// and queue; nil outside a cluster. It takes each group's state (a few atomic reads and
// its configuration) and is meant for a scrape, not the message path.
func (s *Server) QuorumGroups() []QuorumGroupStatus {
	qq := s.quorum
	if qq == nil {
		return nil
	}
	qq.mu.Lock()
	ms := make([]*quorumMember, 0, len(qq.groups))
	for _, m := range qq.groups {
		ms = append(ms, m)
	}
	qq.mu.Unlock()
	out := make([]QuorumGroupStatus, 0, len(ms))
	for _, m := range ms {
		out = append(out, QuorumGroupStatus{Vhost: m.v.Name(), Queue: m.q.Name(), Status: m.g.Status()})
	}
	slices.SortFunc(out, func(a, b QuorumGroupStatus) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.Queue, b.Queue))
	})
	return out
}
