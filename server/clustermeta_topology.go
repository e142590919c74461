package server

import (
	"strings"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/vhost"
)

// The topology changes of AMQP methods and of the management API, each of which calls one of
// these instead of the model. On a single node they are the model's calls. In a cluster a
// change to a replicated object is proposed and returns once this node has applied it; what
// exists already is checked here, without a proposal (a redeclare is the common case and
// costs no round trip), and what stays local (exclusive and non-durable queues, bindings to
// them) is the model's call as on a single node.

// declareExchange is exchange.declare (not passive).
func (s *Server) declareExchange(v *vhost.Vhost, d exchange.Definition) error {
	if !s.clustered() || d.Name == "" || v.HasExchange(d.Name) {
		return v.DeclareExchange(d, false)
	}
	if err := v.ValidateExchange(d); err != nil {
		return err
	}
	return s.propose(cluster.OpExchangeDeclare, v.Name(), d.Name, d, nil)
}

// deleteExchange is exchange.delete. An exchange this node does not know yet may have been
// declared elsewhere a moment ago: the delete is proposed all the same.
func (s *Server) deleteExchange(v *vhost.Vhost, name string, ifUnused bool) error {
	if !s.clustered() || name == "" || strings.HasPrefix(name, "amq.") {
		return v.DeleteExchange(name, ifUnused)
	}
	if ifUnused && v.ExchangeInUse(name) {
		// Checked here too: bindings to this node's own queues (exclusive, non-durable) are
		// not replicated, so the leader cannot see them.
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "exchange '%s' in vhost '%s' in use", name, v.Name())
	}
	return s.propose(cluster.OpExchangeDelete, v.Name(), name, deleteArgs{IfUnused: ifUnused}, nil)
}

// replicatedQueue says whether a queue declared as d is one of the cluster's: every queue but
// an exclusive one, which stays on its connection's node, as in RabbitMQ. A non-durable
// queue lives on the node that declared it while that node runs (cluster.QueueRecord.Transient).
func replicatedQueue(d vhost.QueueDecl) bool { return !d.Exclusive }

// declareQueue is queue.declare by o.
func (s *Server) declareQueue(o vhost.Owner, v *vhost.Vhost, d vhost.QueueDecl) (*vhost.Queue, error) {
	if !s.clustered() || d.Passive || !replicatedQueue(d) || v.HasQueue(d.Name) {
		return v.DeclareQueue(o, d)
	}
	if err := v.ValidateQueue(d); err != nil {
		return nil, err
	}
	rec := s.queueRecord(v.Name(), d)
	if err := s.propose(cluster.OpQueueDeclare, v.Name(), d.Name, d, rec); err != nil {
		return nil, err
	}
	if rec.Type == cluster.QueueQuorum {
		s.awaitQuorumLeader(v.Name(), d.Name)
	}
	return v.DeclareQueue(o, d) // applied here: the equivalence check of a redeclare
}

// quorumElection bounds how long a quorum queue's declaration waits for the queue's first
// leader.
const quorumElection = 5 * time.Second

// awaitQuorumLeader waits until this node knows the leader of the quorum queue vh/name just
// declared (its announcement is applied here), for quorumElection at most: as with
// RabbitMQ, whose declaration returns once the queue's Raft cluster started, a publish right
// after declare-ok finds a leader instead of being nacked. Without one in time (no majority
// of the members up) the declaration succeeds all the same; the queue's state says down.
func (s *Server) awaitQuorumLeader(vh, name string) {
	deadline := time.Now().Add(quorumElection)
	for time.Now().Before(deadline) {
		if r, ok := s.meta.QueueRecord(vh, name); !ok || r.Leader != "" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deleteQueue is queue.delete by o; it returns the messages the queue had ready.
func (s *Server) deleteQueue(o vhost.Owner, v *vhost.Vhost, name string, ifUnused, ifEmpty bool) (int, error) {
	if !s.clustered() {
		return v.DeleteQueue(o, name, ifUnused, ifEmpty)
	}
	rec, ok := s.meta.QueueRecord(v.Name(), name)
	if !ok && v.HasQueue(name) {
		return v.DeleteQueue(o, name, ifUnused, ifEmpty) // one of this node's own
	}
	if !ok {
		// Unknown here, perhaps declared elsewhere a moment ago: the leader decides (a queue
		// that does not exist is deleted without error, as in RabbitMQ).
		return 0, s.propose(cluster.OpQueueDelete, v.Name(), name, deleteArgs{}, nil)
	}
	q, err := v.QueueFor(o, name)
	if err != nil {
		if !v.HasQueue(name) {
			// Gone from this node by itself (auto-delete, x-expires), its deletion on the way
			// to the others: deleting what does not exist succeeds, as in RabbitMQ.
			return 0, s.propose(cluster.OpQueueDelete, v.Name(), name, deleteArgs{}, &rec)
		}
		return 0, err
	}
	// Consumers and messages are the holding node's: if-unused and if-empty are checked
	// here, on this node's view of the queue (exact when the client is on the holding node).
	st := q.Stats()
	if ifUnused && st.Consumers > 0 {
		return 0, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "queue '%s' in vhost '%s' in use", name, v.Name())
	}
	if ifEmpty && st.Ready > 0 {
		return 0, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "queue '%s' in vhost '%s' not empty", name, v.Name())
	}
	if err := s.propose(cluster.OpQueueDelete, v.Name(), name, deleteArgs{IfUnused: ifUnused, IfEmpty: ifEmpty}, &rec); err != nil {
		return 0, err
	}
	return st.Ready, nil
}

// replicatedBinding says whether b is one of the cluster's: to an exchange, or to a queue
// that is not one of this node's own (exclusive or non-durable). A queue this node does not
// know yet may have been declared on another node a moment ago: the leader decides (404 if
// it does not know it either).
func (s *Server) replicatedBinding(v *vhost.Vhost, b binding.Binding) bool {
	if b.Dest.Kind == binding.DestExchange {
		return true
	}
	if _, ok := s.meta.QueueRecord(v.Name(), b.Dest.Name); ok {
		return true
	}
	return !v.HasQueue(b.Dest.Name)
}

// bind is queue.bind or exchange.bind by o.
func (s *Server) bind(o vhost.Owner, v *vhost.Vhost, b binding.Binding) error {
	if !s.clustered() || !s.replicatedBinding(v, b) {
		return v.Bind(o, b)
	}
	return s.propose(cluster.OpBind, v.Name(), b.Dest.Name, b, nil)
}

// unbind is queue.unbind or exchange.unbind by o.
func (s *Server) unbind(o vhost.Owner, v *vhost.Vhost, b binding.Binding) error {
	if !s.clustered() || !s.replicatedBinding(v, b) {
		return v.Unbind(o, b)
	}
	return s.propose(cluster.OpUnbind, v.Name(), b.Dest.Name, b, nil)
}
