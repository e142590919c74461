package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/cluster/quorum"
	"github.com/warrenmq/warren/server/vhost"
)

// Changing a quorum queue's members (RabbitMQ's rabbitmq-queues add_member, delete_member,
// grow and shrink). A change is a metadata command (cluster.OpQueueMembers) that edits the
// queue's record: who the members should be. Every node applies it; the group's leader then
// changes the group's Raft configuration to match, one step at a time (converge), a new
// member starting its part of the group without bootstrapping and joining it as a learner
// (it gets the log, or a snapshot, from the leader and becomes a voter once it caught up,
// so that it never holds up the queue's commits meanwhile), a removed member deleting its copy once the group no longer includes it (retire).
// A leader that changes mid-way leaves the rest to the next one, which converges the same
// record.

// ErrNotClustered answers a membership change on a node that runs alone.
var ErrNotClustered = errors.New("this node runs alone (no cluster-peers)")

// ErrNoSuchNode answers a change naming a node that is not a member of the cluster.
var ErrNoSuchNode = errors.New("no such cluster member")

// QuorumMemberError is a membership change that is not possible: not a quorum queue,
// already a member, not a member, the last member, a bad pattern or strategy.
type QuorumMemberError struct{ Reason string }

func (e *QuorumMemberError) Error() string { return e.Reason }

// QuorumMemberResult is what a grow or shrink did to one queue.
type QuorumMemberResult struct {
	Vhost string `json:"vhost"`
	Name  string `json:"name"`
	Size  int    `json:"size"`            // members after the change
	Error string `json:"error,omitempty"` // why this queue was left as it was
}

// AddQuorumMember makes node a member of the quorum queue vh/name.
func (s *Server) AddQuorumMember(vh, name, node string) error {
	rec, err := s.quorumRecord(vh, name)
	if err != nil {
		return err
	}
	if err := s.clusterNode(node); err != nil {
		return err
	}
	if slices.Contains(rec.Members, node) {
		return &QuorumMemberError{fmt.Sprintf("%s is already a member of quorum queue '%s' in vhost '%s'", node, name, vh)}
	}
	return s.proposeMembers(rec, cluster.MembersChange{Add: node})
}

// DeleteQuorumMember takes node out of the quorum queue vh/name; the last member stays.
func (s *Server) DeleteQuorumMember(vh, name, node string) error {
	rec, err := s.quorumRecord(vh, name)
	if err != nil {
		return err
	}
	if !slices.Contains(rec.Members, node) {
		return &QuorumMemberError{fmt.Sprintf("%s is not a member of quorum queue '%s' in vhost '%s'", node, name, vh)}
	}
	if len(rec.Members) == 1 {
		return &QuorumMemberError{fmt.Sprintf("%s is the last member of quorum queue '%s' in vhost '%s'; delete the queue instead", node, name, vh)}
	}
	return s.proposeMembers(rec, cluster.MembersChange{Remove: node})
}

// GrowQuorumQueues adds node to every quorum queue whose vhost matches vhostPattern and
// whose name matches queuePattern (unanchored regular expressions, as RabbitMQ's; "" matches
// everything); strategy "all", or "even" for the queues with an even number of members only.
func (s *Server) GrowQuorumQueues(node, vhostPattern, queuePattern, strategy string) ([]QuorumMemberResult, error) {
	if s.meta == nil {
		return nil, ErrNotClustered
	}
	if strategy != "all" && strategy != "even" {
		return nil, &QuorumMemberError{fmt.Sprintf("strategy %q: want all or even", strategy)}
	}
	vp, err := regexp.Compile(vhostPattern)
	if err != nil {
		return nil, &QuorumMemberError{fmt.Sprintf("vhost_pattern: %v", err)}
	}
	qp, err := regexp.Compile(queuePattern)
	if err != nil {
		return nil, &QuorumMemberError{fmt.Sprintf("queue_pattern: %v", err)}
	}
	if err := s.clusterNode(node); err != nil {
		return nil, err
	}
	var out []QuorumMemberResult
	for _, r := range s.meta.QueueRecords() {
		if r.Type != cluster.QueueQuorum || slices.Contains(r.Members, node) || !vp.MatchString(r.Vhost) || !qp.MatchString(r.Name) ||
			(strategy == "even" && len(r.Members)%2 != 0) {
			continue
		}
		out = append(out, s.changeMembers(r, cluster.MembersChange{Add: node}, len(r.Members)+1))
	}
	return out, nil
}

// ShrinkQuorumQueues takes node out of every quorum queue it is a member of, except those
// it is the last member of. The node need not be in the cluster any more (a dead node that
// left).
func (s *Server) ShrinkQuorumQueues(node string) ([]QuorumMemberResult, error) {
	if s.meta == nil {
		return nil, ErrNotClustered
	}
	var out []QuorumMemberResult
	for _, r := range s.meta.QueueRecords() {
		if r.Type != cluster.QueueQuorum || !slices.Contains(r.Members, node) {
			continue
		}
		if len(r.Members) == 1 {
			out = append(out, QuorumMemberResult{Vhost: r.Vhost, Name: r.Name, Size: 1,
				Error: "last member: the queue would lose its only copy"})
			continue
		}
		out = append(out, s.changeMembers(r, cluster.MembersChange{Remove: node}, len(r.Members)-1))
	}
	return out, nil
}

func (s *Server) changeMembers(r cluster.QueueRecord, mc cluster.MembersChange, size int) QuorumMemberResult {
	res := QuorumMemberResult{Vhost: r.Vhost, Name: r.Name, Size: size}
	if err := s.proposeMembers(r, mc); err != nil {
		res.Size, res.Error = len(r.Members), err.Error()
		s.log.Warn().Err(err).Str("vhost", r.Vhost).Str("queue", r.Name).Msg("quorum queue: changing its members failed")
	}
	return res
}

func (s *Server) proposeMembers(r cluster.QueueRecord, mc cluster.MembersChange) error {
	if err := s.propose(cluster.OpQueueMembers, r.Vhost, r.Name, mc, nil); err != nil {
		return err
	}
	s.log.Info().Str("vhost", r.Vhost).Str("queue", r.Name).Str("add", mc.Add).Str("remove", mc.Remove).
		Msg("quorum queue: members changed; its leader changes the group")
	return nil
}

// quorumRecord is the record of the quorum queue vh/name.
func (s *Server) quorumRecord(vh, name string) (cluster.QueueRecord, error) {
	if s.meta == nil {
		return cluster.QueueRecord{}, ErrNotClustered
	}
	rec, ok := s.meta.QueueRecord(vh, name)
	if !ok {
		return rec, amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no queue '%s' in vhost '%s'", name, vh)
	}
	if rec.Type != cluster.QueueQuorum {
		return rec, &QuorumMemberError{fmt.Sprintf("queue '%s' in vhost '%s' is a %s queue: only a quorum queue has members", name, vh, rec.Type)}
	}
	return rec, nil
}

// clusterNode checks that node is a member of the cluster.
func (s *Server) clusterNode(node string) error {
	if _, err := s.meta.PeerAddr(node); err != nil {
		if errors.Is(err, cluster.ErrStarting) {
			return err
		}
		return fmt.Errorf("%w: %s", ErrNoSuchNode, node)
	}
	return nil
}

// ClusterMembership changes the cluster's membership (the management API's
// /api/warren/cluster/members); nil outside a cluster.
func (s *Server) ClusterMembership() *ClusterMembership {
	if s.meta == nil {
		return nil
	}
	return &ClusterMembership{s: s}
}

// ClusterMembership adds and removes cluster nodes.
type ClusterMembership struct{ s *Server }

// AddMember adds the node name, reached at addr.
func (c *ClusterMembership) AddMember(name, addr string) error { return c.s.meta.AddMember(name, addr) }

// RemoveMember takes the node name out of every quorum queue it is a member of (as
// RabbitMQ's forget_cluster_node shrinks them; a queue it is the only member of keeps it),
// then out of the cluster, and deletes its non-durable queues, which went with it.
func (c *ClusterMembership) RemoveMember(name string) error {
	if _, err := c.s.ShrinkQuorumQueues(name); err != nil {
		return err
	}
	if err := c.s.meta.RemoveMember(name); err != nil {
		return err
	}
	var gone []cluster.QueueRecord
	for _, r := range c.s.meta.QueueRecords() {
		if r.Transient && r.Owner == name {
			gone = append(gone, r)
		}
	}
	if len(gone) > 0 {
		go c.s.deleteRecords(c.s.meta, gone, "its owner left the cluster")
	}
	return nil
}

// runs says whether this node runs a member of the group of the queue with store id id.
func (qq *quorumQueues) runs(id uint64) bool {
	if qq == nil {
		return false
	}
	qq.mu.Lock()
	defer qq.mu.Unlock()
	return qq.groups[id] != nil
}

// want records the queue's members as its record now says (nil: unchanged) and asks for the
// group to be converged to them.
func (m *quorumMember) want(members []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if members != nil {
		m.members = members
	}
	m.converge = true
}

// wanted returns the members the record names, if the group may differ from them.
func (m *quorumMember) wanted() ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members, m.converge
}

// converged clears the request unless the members changed since members were read.
func (m *quorumMember) converged(members []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Equal(m.members, members) {
		m.converge = false
	}
}

// startConverge runs converge for m on a goroutine of its own, unless one runs already.
func (qq *quorumQueues) startConverge(m *quorumMember) {
	if _, ok := m.wanted(); !ok || !m.busy.CompareAndSwap(false, true) {
		return
	}
	qq.converging.Add(1)
	go func() {
		defer qq.converging.Done()
		defer m.busy.Store(false)
		qq.converge(m)
	}()
}

// converge makes one step towards the group the record names: on the leader, one member
// added (first) or removed; on a member the record no longer names, retire.
func (qq *quorumQueues) converge(m *quorumMember) {
	want, _ := m.wanted()
	if !slices.Contains(want, m.self) {
		qq.retire(m)
		return
	}
	if !m.g.Leading() {
		m.converged(want) // lead asks again if this node becomes the leader
		return
	}
	voters, learners, err := m.g.Configuration()
	if err != nil {
		m.failed(qq, err)
		return
	}
	have := append(voters, learners...)
	for _, name := range want {
		if slices.Contains(have, name) {
			continue
		}
		addr, err := qq.node.PeerAddr(name)
		if err == nil {
			err = m.g.AddMember(name, addr)
		}
		if err != nil {
			m.failed(qq, err)
			return
		}
		qq.log.Info().Str("vhost", m.v.Name()).Str("queue", m.q.Name()).Str("member", name).Msg("quorum queue: member added to its group; it votes once it caught up")
		return
	}
	waiting := false
	for _, name := range learners {
		if !slices.Contains(want, name) {
			continue
		}
		if !m.g.CaughtUp(name) {
			waiting = true // asked again at watch's next look
			continue
		}
		addr, err := qq.node.PeerAddr(name)
		if err == nil {
			err = m.g.Promote(name, addr)
		}
		if err != nil {
			m.failed(qq, err)
			return
		}
		qq.log.Info().Str("vhost", m.v.Name()).Str("queue", m.q.Name()).Str("member", name).Msg("quorum queue: member caught up; it votes now")
		return
	}
	for _, name := range have {
		if slices.Contains(want, name) {
			continue
		}
		if err := m.g.RemoveMember(name); err != nil {
			m.failed(qq, err)
			return
		}
		qq.log.Info().Str("vhost", m.v.Name()).Str("queue", m.q.Name()).Str("member", name).Msg("quorum queue: member removed from its group")
		return
	}
	if waiting {
		return
	}
	// The group is what the record says: a member taken out may now delete its copy.
	if rec, ok := qq.s.meta.QueueRecord(m.v.Name(), m.q.Name()); ok && rec.Reconfigured && !rec.Converged {
		if err := qq.proposeConverged(m, want); err != nil {
			m.failed(qq, err)
			return
		}
	}
	m.converged(want)
}

// convergedWait bounds the wait for the metadata group to commit a queue.converged (tried
// again at watch's next look); the node's close ends it at once.
const convergedWait = 5 * time.Second

// proposeConverged records that m's group has the members want.
func (qq *quorumQueues) proposeConverged(m *quorumMember, want []string) error {
	body, err := json.Marshal(want)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", cluster.OpQueueConverged, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), convergedWait)
	defer cancel()
	go func() {
		select {
		case <-qq.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return qq.s.meta.Propose(ctx, cluster.Command{Op: cluster.OpQueueConverged, Vhost: m.v.Name(), Name: m.q.Name(), Body: body})
}

// failed logs a failed step once per distinct error (converge retries every quorumWatch).
func (m *quorumMember) failed(qq *quorumQueues, err error) {
	m.mu.Lock()
	repeat := m.lastErr == err.Error()
	m.lastErr = err.Error()
	m.mu.Unlock()
	if !repeat {
		qq.log.Warn().Err(err).Str("vhost", m.v.Name()).Str("queue", m.q.Name()).Msg("quorum queue: changing its group's members; retrying")
	}
}

// retire ends this node's membership of a queue whose record no longer names it: a leader
// removes itself from the group first (its raft stops once that is committed); a follower
// keeps its copy until the group no longer includes it: its own configuration says so, or
// the group's leader recorded that the group has the record's members (OpQueueConverged).
// A copy is deleted only once the others can do without it. Then the queue is held
// elsewhere.
func (qq *quorumQueues) retire(m *quorumMember) {
	if m.g.Leading() {
		if err := m.g.RemoveMember(m.self); err != nil {
			m.failed(qq, err)
			return
		}
	}
	if !m.g.Stopped() {
		rec, _ := qq.s.meta.QueueRecord(m.v.Name(), m.q.Name())
		voters, learners, err := m.g.Configuration()
		out := err == nil && !slices.Contains(voters, m.self) && !slices.Contains(learners, m.self)
		if !out && !(rec.Converged && !slices.Contains(rec.Members, m.self)) {
			return // the leader has not taken it out yet
		}
	}
	id := m.q.StoreID()
	qq.mu.Lock()
	if qq.closed || qq.groups[id] != m {
		qq.mu.Unlock()
		return
	}
	delete(qq.groups, id)
	qq.mu.Unlock()
	if err := m.g.Delete(); err != nil {
		qq.log.Warn().Err(err).Str("queue", m.q.Name()).Msg("quorum queue: deleting this node's copy")
	}
	m.q.SetCommitted(nil)
	holder := vhost.PendingHolder
	if rec, ok := qq.s.meta.QueueRecord(m.v.Name(), m.q.Name()); ok && len(rec.Members) > 0 {
		holder = recordHolder(rec)
	}
	if m.q.Remote() != holder {
		m.q.SetRemote(holder)
		qq.s.quorumMoved(m.v, m.q, nil)
	}
	qq.log.Info().Str("vhost", m.v.Name()).Str("queue", m.q.Name()).Str("holder", holder).
		Msg("quorum queue: this node is no longer a member; its copy is deleted")
}

// outside makes a quorum queue this node is not a member of, and runs no member of, held
// elsewhere: forwarded to the holder its record names, counted by the holder (a start that
// began as a member, on a record that was not current yet, may have set it up as one).
func (qq *quorumQueues) outside(ch QuorumQueueChange) {
	v := qq.s.vhost(ch.Vhost)
	if v == nil {
		return
	}
	q, err := v.QueueFor(nil, ch.Name)
	if err != nil {
		return
	}
	q.SetCommitted(nil)
	if h := q.Remote(); h == "" || h == vhost.PendingHolder {
		if rec, ok := qq.s.meta.QueueRecord(ch.Vhost, ch.Name); ok && len(rec.Members) > 0 {
			q.SetRemote(recordHolder(rec))
		}
	}
}

// purge deletes the copy this node kept of a queue it was taken out of while it was down.
func (qq *quorumQueues) purge(ch QuorumQueueChange) {
	had, err := quorum.Purge(qq.s.cfg.Store, qq.node.DataDir(), ch.ID)
	if err != nil {
		qq.log.Warn().Err(err).Str("vhost", ch.Vhost).Str("queue", ch.Name).Msg("quorum queue: deleting the copy of a queue this node is no longer a member of")
	} else if had {
		qq.log.Info().Str("vhost", ch.Vhost).Str("queue", ch.Name).Msg("quorum queue: this node was taken out of the queue while it was down; its copy is deleted")
	}
}
