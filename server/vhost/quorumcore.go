package vhost

import (
	"github.com/warrenmq/warren/server/queue"
)

// In a cluster, a quorum queue's messages are held by the core its Raft group's leader runs
// (server/cluster/quorum): the wiring installs that core here when this node becomes the
// leader, and takes it out when it stops being one.

// SetCore installs core as the queue's core and returns the one it replaces.
func (q *Queue) SetCore(core *queue.Queue) *queue.Queue { return q.core.Swap(core) }

// CoreOptions are the options v gives q's core: features, dead-lettering, window and the
// classic journal, which a quorum queue's group replaces with its own.
func (v *Vhost) CoreOptions(q *Queue) queue.Options { return v.queueOptions(q) }

// SetCommitted makes fn the source of the queue's message count while another node holds it
// (Remote): a quorum queue member's committed messages and their bytes, as its Raft group has
// applied them, so every member reports the same count once idle. nil: this node is no longer
// a member (the count is the holder's).
func (q *Queue) SetCommitted(fn func() (messages int, bytes int64)) {
	if fn == nil {
		q.committed.Store(nil)
		return
	}
	q.committed.Store(&fn)
}

// Stats are the queue's counts: its core's, or, for a quorum queue another node leads, the
// committed messages this node has applied (all ready: deliveries are the leader's).
func (q *Queue) Stats() queue.Stats {
	if fn := q.committed.Load(); fn != nil && q.Remote() != "" {
		n, b := (*fn)()
		return queue.Stats{Ready: n, ReadyBytes: int(b)}
	}
	return q.Core().Stats()
}

// Replicated says the queue is a quorum queue replicated by a Raft group this node is a
// member of: its committed count is known here (Stats) whoever leads it.
func (q *Queue) Replicated() bool { return q.committed.Load() != nil }

// PendingHolder is the holder a replicated quorum queue names until its Raft group's wiring
// knows better: no node has that name, so what would be forwarded there is refused.
const PendingHolder = "(electing)"
