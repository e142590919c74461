package vhost

import (
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
)

// Remote queues. In a cluster every node has every replicated queue's record, so that it
// routes, lists and answers a passive declare the same way; a queue held by another node
// (a classic queue declared there, a quorum queue this node is not a member of) is marked
// remote here. Consuming from it or getting from it is refused until forwarding between
// nodes exists; it never expires here (its owner decides).

// SetRemote marks the queue as held by node ("" makes it local again).
func (q *Queue) SetRemote(node string) {
	if node == "" {
		q.remote.Store(nil)
		return
	}
	q.remote.Store(&node)
}

// Remote is the node that holds the queue, "" when it is this one.
func (q *Queue) Remote() string {
	if p := q.remote.Load(); p != nil {
		return *p
	}
	return ""
}

// CheckLocal refuses an operation on a queue's messages when another node holds the queue:
// 405 RESOURCE_LOCKED with the node's name.
func (q *Queue) CheckLocal() error {
	if node := q.Remote(); node != "" {
		return amqpwire.NewChannelError(amqpwire.CodeResourceLocked, 0, 0,
			"queue '%s' is held by cluster node '%s'; consume from it through a connection to that node", q.name, node)
	}
	return nil
}

// StoreID is the queue's id in the store (0 without a store record): a quorum queue's Raft
// group id.
func (q *Queue) StoreID() uint64 {
	if q.journal == nil || !q.stored {
		return 0
	}
	return q.journal.id
}

// queueGone holds the function told of every queue a vhost deletes by itself (x-expires,
// auto-delete): in a cluster the owner node proposes the deletion to the others.
type queueGone struct {
	fn atomic.Pointer[func(vhost, name string)]
}

// tell calls the function, if any; g may be nil (a vhost made outside a registry).
func (g *queueGone) tell(vhost, name string) {
	if g == nil {
		return
	}
	if fn := g.fn.Load(); fn != nil {
		(*fn)(vhost, name)
	}
}

// OnQueueGone sets the function told of every queue the registry's vhosts delete by
// themselves (expired, auto-deleted), after the deletion, with the vhost's locks held: it
// must not call back into the model.
func (r *Registry) OnQueueGone(fn func(vhost, name string)) { r.gone.fn.Store(&fn) }
