package vhost

import "github.com/warrenmq/warren/server/queue"

// In a cluster, a quorum queue's messages are held by the core its Raft group's leader runs
// (server/cluster/quorum): the wiring installs that core here when this node becomes the
// leader, and takes it out when it stops being one.

// SetCore installs core as the queue's core and returns the one it replaces.
func (q *Queue) SetCore(core *queue.Queue) *queue.Queue { return q.core.Swap(core) }

// CoreOptions are the options v gives q's core: features, dead-lettering, window and the
// classic journal, which a quorum queue's group replaces with its own.
func (v *Vhost) CoreOptions(q *Queue) queue.Options { return v.queueOptions(q) }
