package vhost

import (
	"sync/atomic"

	"github.com/warrenmq/warren/server/queue"
)

// Forwarder takes the messages routed to queues another node holds (Queue.Remote): in a
// cluster the server forwards them to that node (server/forward_publish.go).
type Forwarder interface {
	// Forward sends msg to q, held by node. c, when not nil, counts the forward as one
	// write (Add before it returns, Done with the node's answer): a confirm or
	// tx.commit-ok waits for it, and an error nacks.
	Forward(v *Vhost, q *Queue, node string, msg *queue.Message, c Confirm)
	// LeaderMoving says err, the failure of a forwarded publish to a quorum queue, lasts
	// only while the queue's leadership moves: the message is sent again (resend.go).
	LeaderMoving(err error) bool
	// GaveUp is told of a publish to the quorum queue q that is nacked (err: why: no leader
	// took it within ResendFor, or a failure no resend mends), for the log.
	GaveUp(v *Vhost, q *Queue, err error)
}

// forwardHook holds the registry's Forwarder, shared by its vhosts.
type forwardHook struct {
	f atomic.Pointer[Forwarder]
}

// get returns the forwarder; h may be nil (a vhost made outside a registry).
func (h *forwardHook) get() Forwarder {
	if h == nil {
		return nil
	}
	if f := h.f.Load(); f != nil {
		return *f
	}
	return nil
}

// SetForwarder makes the registry's vhosts hand messages routed to remote queues to f
// instead of enqueueing them on the local copy.
func (r *Registry) SetForwarder(f Forwarder) { r.fwd.f.Store(&f) }

// HolderOf is the node that holds the named queue ("" when it is this one, or there is no
// such queue), without counting as a use of the queue (x-expires).
func (v *Vhost) HolderOf(name string) string {
	v.mu.RLock()
	q := v.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return ""
	}
	return q.Remote()
}
