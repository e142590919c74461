// Package quorum replicates a quorum queue over the cluster's nodes: one Raft group
// (hashicorp/raft) per queue, whose commands are the queue core's journal writes.
//
// Warren's queue core (server/queue) stays the state machine's engine. On the group's leader
// only, a core runs over a journal of this package: every Append, Remove, SetDeliveries and
// Drop the core submits becomes a command, batched with its neighbours into one Raft log
// entry. An Append's done runs once its entry is committed (a majority of the members has it
// on disk) and applied to the leader's own store, so a publisher confirm means "on a
// majority"; if the entry is not committed within Timing.CommitBound (no leader, leadership
// lost, no majority reachable) done gets ErrNotLeader or ErrCommitTimeout and the publisher is
// nacked. A failed command also drops the core, which is rebuilt if the node still leads:
// the core may hold messages whose fate it does not know.
//
// Every member (the leader too) applies committed commands to its own store with the keys a
// classic queue's journal uses (store.Append, Remove, SetDeliveries on Ref{queue ID, seq}),
// so each replica's store holds the committed queue, and keeps the committed message count
// and bytes in memory: Group.Committed is what declare-ok and listings show, the same on
// every node. Commands set or delete keys, so Raft's replay of the log after a restart is
// harmless. A snapshot is a consistent view of the queue's records (store.ViewQueue):
// a mostly empty queue makes a tiny one; restoring it replaces the member's records
// (store.DeleteQueueRecords). The node must keep the queue's definition ('Q' record) in its
// store, as the replicated metadata does, or the store drops the records at its next Open.
//
// Leadership: when the node becomes the group's leader it waits until it has applied the
// whole log (raft.Barrier), rebuilds a core from its store (as a restart recovers a queue:
// every message present then may have been delivered by the old leader, so all come back
// redelivered, with their recorded delivery counts) and hands it to Config.OnLeader. When it
// loses the leadership (or the group stops) the core's pending commands fail, the core is
// deleted, and Config.OnFollower gets its consumers, which must attach to the new leader.
//
// The API the broker calls:
//
//	hub, err := quorum.NewHub(mux, log) // once per node, on its cluster transport; Close last
//	g, err := quorum.Start(quorum.Config{ID: queueID, Name: name, Self: node, Members: members,
//		Hub: hub, Store: st, DataDir: dataDir, Options: coreOptions,
//		OnLeader: attach, OnFollower: detach})
//	g.Core()        // the leader's core, nil on a follower
//	g.Committed()   // committed messages and bytes on this member
//	g.LeaderID()    // the leader's node name and cluster address
//	g.Status()      // state, term, indexes, members (online, match index, lag) for the API
//	g.Close()       // the node stops: the member keeps its state and rejoins at the next Start
//	g.Delete()      // the queue is deleted: log, snapshots and records go (on every member)
//
// Every group of a node shares the hub: one set of connections to each peer (cluster stream
// TransportGroup), whatever the number of queues.
//
// Every message of a quorum queue must reach the journal when it is published, as RabbitMQ
// keeps every message of a quorum queue whatever its delivery mode: the core journals a
// message at publish only when it is persistent, so the broker must publish to a quorum
// queue's core as persistent (a transient message would be confirmed at once and replicated
// only if it is paged out).
//
// Start bootstraps a fresh group with Members (every member bootstraps the same list, as the
// metadata group does); a member with Raft state for the queue rejoins with it. Timing
// defaults (DefaultTiming) are chosen for hundreds to thousands of groups per node; see
// docs/cluster.md, "Quorum queues".
package quorum
