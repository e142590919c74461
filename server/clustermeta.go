package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/vhost"
)

// Replicated metadata. In a cluster (Server.meta set by Attach) the changes of the
// replicated model are proposed to the metadata Raft group instead of applied: exchanges,
// durable non-exclusive queues, bindings to them, and the management API's vhosts, users,
// permissions, topic permissions, policies, limits and imports. ApplyMeta, run on every node
// in log order, makes each change with the same functions a single node uses. Without a
// cluster none of this runs: each call site checks s.meta == nil first.

// proposeTimeout bounds a proposal made for a client: with no leader for that long the
// client gets errNoQuorum.
const proposeTimeout = 30 * time.Second

// QuorumQueueChange is a quorum queue record applied on this node: created (or found at
// start, or seen again in a snapshot: the same queue may be reported more than once) with its
// members, or deleted.
type QuorumQueueChange struct {
	Vhost, Name string
	// Group is the queue's Raft group id, the same on every node (cluster.QueueRecord.Group).
	Group uint64
	// ID is the queue's id in this node's store (each node's own); 0 without a store record.
	ID      uint64
	Members []string
	// Reconfigured: the members changed since the declaration; Converged: the group's leader
	// found its Raft configuration equal to Members since (cluster.QueueRecord).
	Reconfigured, Converged bool
	Deleted                 bool
}

var _ cluster.Applier = (*Server)(nil)

// Attach implements cluster.Applier: from now on the replicated model's changes go through
// n. Queues other nodes hold are marked remote again (the marks are not on disk).
func (s *Server) Attach(n *cluster.Node) {
	s.meta = n
	s.vhosts.PersistTransientExchanges()
	if s.cfg.Store != nil {
		qq, err := startQuorumQueues(s, n)
		if err != nil {
			s.log.Error().Err(err).Msg("cluster: quorum queues cannot be replicated on this node")
		}
		s.quorum = qq
	}
	var gone []cluster.QueueRecord
	for _, r := range n.QueueRecords() {
		if r.Transient && r.Owner == n.Name() {
			gone = append(gone, r) // this node restarted: its non-durable queues are gone
			continue
		}
		s.applyRecord(r)
	}
	s.vhosts.OnQueueGone(s.queueGone)
	if len(gone) > 0 {
		go s.deleteRecords(n, gone, "its owner restarted")
	}
	go s.watchDownNodes(n)
}

// deleteRecords proposes the deletion of queues that no longer exist (non-durable ones of a
// node that restarted, left or is down), retrying every second while the cluster has no
// leader, until each is done, or its record is gone or names another owner (the name was
// declared again), or the node closes.
func (s *Server) deleteRecords(n *cluster.Node, recs []cluster.QueueRecord, why string) {
	if !n.WaitStarted() { // Attach runs before the metadata group does
		return
	}
	for _, r := range recs {
		for {
			if cur, ok := n.QueueRecord(r.Vhost, r.Name); !ok || !cur.Transient || cur.Owner != r.Owner {
				break // deleted already, or declared again since on another node (ErrStaleRecord)
			}
			err := s.propose(cluster.OpQueueDelete, r.Vhost, r.Name, deleteArgs{}, &r)
			if err == nil {
				s.log.Info().Str("vhost", r.Vhost).Str("queue", r.Name).Str("owner", r.Owner).Str("why", why).
					Msg("cluster: non-durable queue deleted")
				break
			}
			if n.Closed() {
				return
			}
			s.log.Warn().Err(err).Str("vhost", r.Vhost).Str("queue", r.Name).Msg("cluster: deleting a non-durable queue that is gone; retrying")
			time.Sleep(time.Second)
		}
	}
}

// quorumChange starts or deletes this node's member of a quorum queue's group
// (clusterquorum.go) and tells Config.OnQuorumQueue.
func (s *Server) quorumChange(ch QuorumQueueChange) {
	if s.quorum != nil {
		s.quorum.change(ch)
	}
	if s.cfg.OnQuorumQueue != nil {
		s.cfg.OnQuorumQueue(ch)
	}
}

// queueGone proposes the deletion of a replicated queue this node holds and deleted by
// itself (x-expires, auto-delete), so that the other nodes' copies and its record go too. It
// is called under the vhost's locks: the proposal runs on a goroutine of its own, which ends
// once the deletion is applied, refused, or the wait for a leader (proposeTimeout) or the
// node ends.
func (s *Server) queueGone(vh, name string) {
	rec, ok := s.meta.QueueRecord(vh, name)
	if !ok || !rec.Local(s.meta.Name()) {
		return
	}
	go func() {
		if err := s.propose(cluster.OpQueueDelete, vh, name, deleteArgs{}, &rec); err != nil {
			s.log.Warn().Err(err).Str("vhost", vh).Str("queue", name).Msg("cluster: the deletion of an expired or auto-deleted queue was not replicated")
		}
	}()
}

// clustered says whether changes to the replicated model are proposed.
func (s *Server) clustered() bool { return s.meta != nil }

// propose submits one change and waits until this node has applied it. errNoQuorum when the
// cluster has no leader within proposeTimeout.
func (s *Server) propose(op, vh, name string, body any, rec *cluster.QueueRecord) error {
	c := cluster.Command{Op: op, Vhost: vh, Name: name, Queue: rec}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", op, err)
		}
		c.Body = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.proposeTimeout)
	defer cancel()
	err := s.meta.Propose(ctx, c)
	if errors.Is(err, cluster.ErrNoLeader) || errors.Is(err, context.DeadlineExceeded) {
		if s.noQuorumLog.note(op, err.Error(), time.Now()) {
			s.log.Warn().Err(err).Str("op", op).Str("vhost", vh).Str("name", name).Msg("change refused: the cluster has no majority")
		}
		return errNoQuorum(op, vh, name)
	}
	return err
}

// errNoQuorum is the reply to a change the cluster could not commit: no leader (fewer than a
// majority of the nodes reachable) within proposeTimeout. It is what RabbitMQ with Khepri
// (its Raft metadata store) answers in a minority: the connection is closed with 541
// INTERNAL_ERROR "failed to declare exchange 'x' in vhost '/' because the operation timed
// out". The management API answers 503.
func errNoQuorum(op, vh, name string) error {
	what := map[string]string{
		cluster.OpExchangeDeclare: "declare exchange", cluster.OpExchangeDelete: "delete exchange",
		cluster.OpQueueDeclare: "declare queue", cluster.OpQueueDelete: "delete queue",
		cluster.OpBind: "bind to", cluster.OpUnbind: "unbind from",
		cluster.OpQueueMembers: "change the members of queue",
	}[op]
	if what == "" {
		what = "apply " + op + " to"
	}
	return &NoQuorumError{ConnectionError: amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0,
		"failed to %s '%s' in vhost '%s' because the operation timed out", what, name, vh)}
}

// NoQuorumError is a change the cluster could not commit (the management API answers 503).
type NoQuorumError struct{ *amqpwire.ConnectionError }

// Unwrap lets the AMQP layer close the connection with the embedded error.
func (e *NoQuorumError) Unwrap() error { return e.ConnectionError }

// queueRecord is where a new replicated queue lives: a classic queue on this node (as
// RabbitMQ places a classic queue on the node the declaring client is connected to), a quorum
// queue on every node or x-quorum-initial-group-size of them, starting at a node picked from
// the queue's name so that groups spread over the nodes.
func (s *Server) queueRecord(vh string, d vhost.QueueDecl) *cluster.QueueRecord {
	r := &cluster.QueueRecord{Vhost: vh, Name: d.Name, Type: cluster.QueueClassic, Owner: s.meta.Name()}
	if t, _ := vhost.StringArg(d.Args, "x-queue-type"); t != "quorum" {
		if !d.Durable {
			r.Transient = true
			r.Decl, _ = json.Marshal(d) // plain fields and a table of bytes
		}
		return r
	}
	nodes := s.meta.Members()
	size := len(nodes)
	if v, ok, _ := d.Args.Get("x-quorum-initial-group-size"); ok {
		if n, ok := intArg(v); ok && n > 0 && int(n) < size {
			size = int(n)
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(vh + "\x00" + d.Name))
	start := int(h.Sum32() % uint32(len(nodes)))
	r.Type, r.Owner = cluster.QueueQuorum, ""
	for i := range size {
		r.Members = append(r.Members, nodes[(start+i)%len(nodes)])
	}
	return r
}

// intArg is an integer field table value.
func intArg(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// applyRecord marks the queue of r remote unless this node holds it, and tells the quorum
// hook about a quorum queue.
func (s *Server) applyRecord(r cluster.QueueRecord) {
	v := s.vhost(r.Vhost)
	if v == nil {
		return
	}
	q, err := v.QueueFor(nil, r.Name)
	if err != nil && r.Transient && len(r.Decl) > 0 && r.Owner != s.meta.Name() {
		// Another node's non-durable queue, which this node (restarted) did not keep: declared
		// again from its record, to be forwarded to its owner.
		var d vhost.QueueDecl
		if jerr := json.Unmarshal(r.Decl, &d); jerr == nil {
			d.Passive, d.Exclusive = false, false
			q, err = v.DeclareQueue(nil, d)
		}
	}
	if err != nil {
		return
	}
	remote := ""
	if !r.Local(s.meta.Name()) {
		remote = recordHolder(r)
	}
	// A quorum queue's member names the holder as its group's leadership goes
	// (clusterquorum.go), never "" before it leads; so does a member being removed, until its
	// group lets it go.
	if r.Type != cluster.QueueQuorum || (remote != "" && !s.quorum.runs(q.StoreID())) {
		q.SetRemote(remote)
	}
	if r.Type == cluster.QueueQuorum {
		s.quorumChange(QuorumQueueChange{Vhost: r.Vhost, Name: r.Name, Group: r.Group, ID: q.StoreID(),
			Members: r.Members, Reconfigured: r.Reconfigured, Converged: r.Converged})
	}
}

// recordHolder is the node a node that does not hold r's queue forwards to: a classic
// queue's owner; for a quorum queue, the member that announced it leads (OpQueueLeader), else
// the first member.
func recordHolder(r cluster.QueueRecord) string {
	if r.Type != cluster.QueueQuorum || len(r.Members) == 0 {
		return r.Owner
	}
	if slices.Contains(r.Members, r.Leader) {
		return r.Leader
	}
	return r.Members[0]
}

// Bodies of the topology commands.
type (
	deleteArgs struct {
		IfUnused bool `json:"if_unused,omitempty"`
		IfEmpty  bool `json:"if_empty,omitempty"`
	}
)

// ApplyMeta implements cluster.Applier.
func (s *Server) ApplyMeta(c cluster.Command) error {
	switch c.Op {
	case cluster.OpExchangeDeclare, cluster.OpExchangeDelete, cluster.OpQueueDeclare, cluster.OpQueueDelete,
		cluster.OpBind, cluster.OpUnbind:
		return s.applyTopology(c)
	case cluster.OpQueueLeader:
		// A queue deleted meanwhile has no record. A member learns its leader from its group
		// (clusterquorum.go); the announcement names it at once on a member still waiting.
		if r := c.Queue; r != nil && slices.Contains(r.Members, r.Leader) {
			if v := s.vhost(r.Vhost); v != nil {
				if q, err := v.QueueFor(nil, r.Name); err == nil {
					if !r.Local(s.meta.Name()) {
						q.SetRemote(r.Leader)
					} else {
						s.quorum.announced(q.StoreID(), r.Leader)
					}
				}
			}
		}
		return nil
	case cluster.OpQueueConverged:
		if c.Queue != nil { // nil: the members changed again meanwhile, or the queue went
			s.applyRecord(*c.Queue)
		}
		return nil
	case cluster.OpQueueMembers:
		if c.Queue == nil {
			return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no quorum queue '%s' in vhost '%s'", c.Name, c.Vhost)
		}
		s.applyRecord(*c.Queue)
		return nil
	}
	return s.applyAPI(c)
}

func (s *Server) applyTopology(c cluster.Command) error {
	v := s.vhost(c.Vhost)
	if v == nil {
		return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no vhost '%s'", c.Vhost)
	}
	switch c.Op {
	case cluster.OpExchangeDeclare:
		var d exchange.Definition
		if err := json.Unmarshal(c.Body, &d); err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		return v.DeclareExchange(d, false)
	case cluster.OpExchangeDelete:
		var a deleteArgs
		if err := json.Unmarshal(c.Body, &a); err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		return v.DeleteExchange(c.Name, a.IfUnused)
	case cluster.OpQueueDeclare:
		var d vhost.QueueDecl
		if err := json.Unmarshal(c.Body, &d); err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		d.Passive, d.Exclusive = false, false
		if c.Queue != nil && c.Queue.Type == cluster.QueueQuorum && c.Queue.Group != 0 {
			d.StoreID = vhost.ReplicatedQueueID(c.Queue.Group)
		}
		if _, err := v.DeclareQueue(nil, d); err != nil {
			return err
		}
		if c.Queue != nil {
			s.applyRecord(*c.Queue)
		}
		return nil
	case cluster.OpQueueDelete:
		// if-unused and if-empty were checked where the client asked (consumers and
		// messages are the holding node's): every node deletes.
		var id uint64
		if q, err := v.QueueFor(nil, c.Name); err == nil {
			id = q.StoreID()
		}
		rec, known := s.meta.QueueRecord(c.Vhost, c.Name) // the FSM drops it after this returns
		if _, err := v.DeleteQueue(nil, c.Name, false, false); err != nil {
			return err
		}
		if known && rec.Type == cluster.QueueQuorum {
			s.quorumChange(QuorumQueueChange{Vhost: c.Vhost, Name: c.Name, Group: rec.Group, ID: id, Members: rec.Members, Deleted: true})
		}
		return nil
	case cluster.OpBind, cluster.OpUnbind:
		var b binding.Binding
		if err := json.Unmarshal(c.Body, &b); err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		if c.Op == cluster.OpBind {
			return v.Bind(nil, b)
		}
		return v.Unbind(nil, b)
	}
	return fmt.Errorf("unknown metadata op %q", c.Op)
}

// wireError is an ApplyMeta error on its way from the leader to the proposing node.
type wireError struct {
	Kind   string `json:"kind"` // channel, connection, refused, not_found, vhost_not_found, user_not_found, other
	Code   uint16 `json:"code,omitempty"`
	Class  uint16 `json:"class,omitempty"`
	Method uint16 `json:"method,omitempty"`
	Text   string `json:"text"`
}

// MarshalError implements cluster.Applier.
func (s *Server) MarshalError(err error) json.RawMessage {
	w := wireError{Kind: "other", Text: err.Error()}
	var ch *amqpwire.ChannelError
	var conn *amqpwire.ConnectionError
	var ref *RefusedError
	switch {
	case errors.As(err, &ch):
		w = wireError{Kind: "channel", Code: ch.Code, Class: ch.ClassID, Method: ch.MethodID, Text: ch.Text}
	case errors.As(err, &conn):
		w = wireError{Kind: "connection", Code: conn.Code, Class: conn.ClassID, Method: conn.MethodID, Text: conn.Text}
	case errors.As(err, &ref):
		w = wireError{Kind: "refused", Text: ref.Reason}
	case errors.Is(err, ErrNotFound):
		w.Kind = "not_found"
	case errors.Is(err, ErrVhostNotFound):
		w.Kind = "vhost_not_found"
	case errors.Is(err, ErrUserNotFound):
		w.Kind = "user_not_found"
	}
	b, _ := json.Marshal(w) // plain fields
	return b
}

// UnmarshalError implements cluster.Applier.
func (s *Server) UnmarshalError(raw json.RawMessage) error {
	var w wireError
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("the leader refused the change: %s", raw)
	}
	switch w.Kind {
	case "channel":
		return &amqpwire.ChannelError{Code: w.Code, Text: w.Text, ClassID: w.Class, MethodID: w.Method}
	case "connection":
		return &amqpwire.ConnectionError{Code: w.Code, Text: w.Text, ClassID: w.Class, MethodID: w.Method}
	case "refused":
		return &RefusedError{Reason: w.Text}
	case "not_found":
		return ErrNotFound
	case "vhost_not_found":
		return ErrVhostNotFound
	case "user_not_found":
		return ErrUserNotFound
	}
	return errors.New(w.Text)
}
