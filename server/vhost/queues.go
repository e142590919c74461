package vhost

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Queue is a declared queue: the queue core and the metadata declares are checked against.
type Queue struct {
	// core holds the messages; it changes only for a quorum queue in a cluster, whose core
	// is the one its Raft group's leader runs (SetCore).
	core       atomic.Pointer[queue.Queue]
	committed  atomic.Pointer[func() (int, int64)] // SetCommitted
	name       string
	durable    bool
	autoDelete bool
	owner      Owner // the declaring connection of an exclusive queue, nil otherwise
	args       amqpwire.Table
	// journal is the queue's view of the store (nil without one); stored says the queue has a
	// record there, so it and its persistent messages survive a restart.
	journal *journal
	stored  bool
	// dedup is the deduplication cache, nil without x-message-deduplication.
	dedup *dedupCache
	// declared are the validated x-arguments; eff is what the queue acts on, the arguments
	// combined with the policy that applies (policy.go). lastUsed and expiry implement x-expires.
	declared queueArgs
	eff      atomic.Pointer[queueArgs]
	policy   string // name of the policy applied; written under Vhost.defs
	lastUsed atomic.Int64
	expiry   *time.Timer
	// consumers mirrors the core's consumers, for listing: every consumer comes and goes
	// through the model (AddConsumer, Vhost.RemoveConsumer, deletion).
	cmu       sync.Mutex
	consumers map[Consumer]consumerRec
	// remote names the cluster node that holds this queue when it is not this one (remote.go).
	remote atomic.Pointer[string]
	// resend holds a quorum queue's publishes waiting for a leader (resend.go); nil until one
	// had to wait.
	resend atomic.Pointer[resender]
}

// consumerRec is what a listing shows of a consumer.
type consumerRec struct {
	tag  string
	opts queue.ConsumerOptions
}

// cur returns the queue's effective arguments.
func (q *Queue) cur() *queueArgs { return q.eff.Load() }

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Type is the queue's x-queue-type: classic or quorum. On a single node a quorum queue differs
// from a classic one in its declare rules and delivery semantics; in a cluster it is
// replicated (server/clusterquorum.go).
func (q *Queue) Type() string { return q.declared.Type() }

// Core is the queue core that holds the messages and delivers them: consume, get, settle and
// purge go to it directly.
func (q *Queue) Core() *queue.Queue { return q.core.Load() }

// OwnedBy reports whether o declared the queue exclusive.
func (q *Queue) OwnedBy(o Owner) bool { return q.owner != nil && q.owner == o }

// AddConsumer subscribes c, under the consumer tag tag, to the queue
// (queue.Queue.AddConsumer); the model cancels c when the queue is deleted.
func (q *Queue) AddConsumer(c Consumer, tag string, opts queue.ConsumerOptions) error {
	if err := q.CheckLocal(); err != nil {
		return err
	}
	if err := q.Core().AddConsumer(c, opts); err != nil {
		return err
	}
	q.cmu.Lock()
	if q.consumers == nil {
		q.consumers = make(map[Consumer]consumerRec)
	}
	q.consumers[c] = consumerRec{tag: tag, opts: opts}
	q.cmu.Unlock()
	return nil
}

// Touch records a use of the queue for x-expires.
func (q *Queue) Touch() { q.touch() }

// touch records a use of the queue for x-expires.
func (q *Queue) touch() {
	if q.cur().expires != 0 {
		q.lastUsed.Store(time.Now().UnixMilli())
	}
}

// queueOptions configure the queue core for rec: its journal, features and dead-letter hook.
func (v *Vhost) queueOptions(rec *Queue) queue.Options {
	qa := rec.cur()
	opts := queue.Options{Durable: rec.stored, Features: qa.features, Window: *v.window.Load(), Clock: queue.RealClock{}}
	if j := rec.journal; j != nil {
		opts.Journal = j
		opts.LevelJournal = func(level uint8) queue.Journal {
			return j.level(level)
		}
	}
	dl := &deadLetterer{v: v, queue: rec.name, rec: rec}
	opts.DeadLetter = dl.hook()
	return opts
}

// QueueCount is the number of queues in the vhost.
func (v *Vhost) QueueCount() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.queues)
}

// HasQueue reports whether the vhost has the named queue.
func (v *Vhost) HasQueue(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.queues[name] != nil
}

// CheckQueueEquivalent is the redeclare check for d by no connection: nil when there is no
// such queue.
func (v *Vhost) CheckQueueEquivalent(d QueueDecl) error {
	v.mu.RLock()
	q := v.queues[d.Name]
	v.mu.RUnlock()
	if q == nil {
		return nil
	}
	return v.queueEquivalent(q, d)
}

// QueueFor returns the named queue for an operation by o; exclusive queues of other owners
// are locked (405).
func (v *Vhost) QueueFor(o Owner, name string) (*Queue, error) {
	v.mu.RLock()
	q := v.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return nil, v.ErrNoQueue(name)
	}
	if q.owner != nil && q.owner != o {
		return nil, v.errLocked(name)
	}
	q.touch()
	return q, nil
}

// QueueDecl is a queue.declare after name expansion (the protocol's "" and amq.gen-).
type QueueDecl struct {
	Name       string
	Passive    bool
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       amqpwire.Table
	// ServerNamed says the client asked for a name ("") and Name is the one generated.
	ServerNamed bool
	// StoreID, when not 0, is the id the queue's record takes in the store, instead of the
	// next of the store's sequence: a quorum queue in a cluster has the same id on every node
	// (ReplicatedQueueID), its Raft group's.
	StoreID uint64 `json:"-"`
}

// ReplicatedQueueID is the store id of the quorum queue whose Raft group is group on every
// node of a cluster: above the ids the store's sequence hands out, below the priority levels'
// bits (store.LevelQueueID).
func ReplicatedQueueID(group uint64) uint64 { return 1<<47 | group }

// DeclareQueue creates a queue, owned by o when exclusive, or checks a redeclare by o; it
// returns the queue.
func (v *Vhost) DeclareQueue(o Owner, d QueueDecl) (*Queue, error) {
	v.defs.Lock()
	defer v.defs.Unlock()
	var qa queueArgs
	if !d.Passive {
		if t, _ := StringArg(d.Args, "x-queue-type"); t == typeQuorum && d.ServerNamed {
			return nil, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
				"Cannot declare a server-named queue for type rabbit_quorum_queue")
		}
		var err error
		if qa, err = parseQueueArgs(d.Name, v.name, d.Args); err != nil {
			return nil, err
		}
	}
	v.mu.RLock()
	q := v.queues[d.Name]
	v.mu.RUnlock()
	if q != nil {
		if q.owner != nil && q.owner != o {
			return nil, v.errLocked(d.Name)
		}
		q.touch()
		if d.Passive {
			return q, nil
		}
		if err := v.queueEquivalent(q, d); err != nil {
			return nil, err
		}
		return q, nil
	}
	if d.Passive {
		return nil, v.ErrNoQueue(d.Name)
	}
	if qa.quorum {
		if err := checkQuorumDeclare(d, v.name); err != nil {
			return nil, err
		}
	}
	q = &Queue{
		name:       d.Name,
		durable:    d.Durable,
		autoDelete: d.AutoDelete,
		args:       d.Args,
		declared:   qa,
	}
	pol := v.policyFor(policyQueues, d.Name)
	v.setEffective(q, qa.withPolicy(pol, true), pol)
	if d.Exclusive {
		q.owner = o
	}
	if v.st != nil {
		q.journal = &journal{st: v.st, log: v.log}
		if d.Durable && !d.Exclusive {
			if qa.dedup.on {
				if err := v.freshDedup(store.DedupQueue, d.Name); err != nil {
					return nil, v.persistFailed(err)
				}
			}
			sq := store.Queue{Vhost: v.name, Name: d.Name, AutoDelete: d.AutoDelete, Args: storedArgs(d.Args, qa, q.cur()), ID: d.StoreID}
			if err := v.st.PutQueue(&sq); err != nil {
				return nil, v.persistFailed(err)
			}
			q.journal.id, q.stored = sq.ID, true
		} else {
			// A queue that does not survive a restart still pages to disk under memory
			// pressure, under an id with no queue record: its messages are dropped at start.
			q.journal.id = transientQueueID | v.st.NewMessageID()
		}
	}
	var dst *store.Store
	if q.stored {
		dst = v.st
	}
	q.dedup = v.newDedupCache(qa.dedup, store.DedupQueue, d.Name, dst)
	q.core.Store(queue.New(d.Name, v.queueOptions(q)))
	if d.StoreID != 0 {
		// A replicated quorum queue takes nothing until its Raft group's wiring installs the
		// leader's core or names the holder (quorumcore.go).
		q.Core().Delete()
		q.SetRemote(PendingHolder)
	}
	v.mu.Lock()
	v.queues[d.Name] = q
	v.mu.Unlock()
	v.churn.addCreated()
	v.armExpiry(q)
	return q, nil
}

// transientQueueID marks the store ids of queues that have no record: durable queue ids come
// from the store's sequence and never reach this bit.
const transientQueueID = 1 << 63

func (v *Vhost) queueEquivalent(q *Queue, d QueueDecl) error {
	if (q.owner != nil) != d.Exclusive {
		return v.errLocked(d.Name)
	}
	if q.durable != d.Durable {
		return inequivalent("durable", "queue", d.Name, v.name, d.Durable, q.durable)
	}
	if q.autoDelete != d.AutoDelete {
		return inequivalent("auto_delete", "queue", d.Name, v.name, d.AutoDelete, q.autoDelete)
	}
	keys := queueArgKeys
	if classicType(d.Args) && classicType(q.args) {
		keys = untypedQueueArgKeys
	}
	return argsEquivalent(keys, "queue", d.Name, v.name, d.Args, q.args)
}

// DeleteQueue removes a queue and its bindings and cancels its consumers. It returns how many
// messages were ready. A missing queue is not an error (RabbitMQ's delete is idempotent).
func (v *Vhost) DeleteQueue(o Owner, name string, ifUnused, ifEmpty bool) (int, error) {
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	q := v.queues[name]
	if q == nil {
		v.mu.Unlock()
		return 0, nil
	}
	if q.owner != nil && q.owner != o {
		v.mu.Unlock()
		return 0, v.errLocked(name)
	}
	st := q.Core().Stats()
	if ifUnused && st.Consumers > 0 {
		v.mu.Unlock()
		return 0, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "queue '%s' in vhost '%s' in use", name, v.name)
	}
	if ifEmpty && st.Ready > 0 {
		v.mu.Unlock()
		return 0, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "queue '%s' in vhost '%s' not empty", name, v.name)
	}
	v.removeQueueLocked(q)
	v.mu.Unlock()
	n := v.finishQueueDelete(q)
	return n, v.persist()
}

// removeQueueLocked deletes a queue with its bindings; its records go in persist.
func (v *Vhost) removeQueueLocked(q *Queue) {
	if q.expiry != nil {
		q.expiry.Stop()
	}
	v.removeDestinationLocked(binding.Destination{Kind: binding.DestQueue, Name: q.name})
	delete(v.queues, q.name)
	v.churn.addDeleted()
	v.dropDedupLocked(q.dedup)
	if q.journal == nil {
		return
	}
	id := q.journal.id
	// Priority levels keep their records under their own ids; the queue's own record and id
	// go with DeleteQueue, or by range for a queue that has no record.
	v.record(func(st *store.Store) error {
		for l := 1; l <= int(q.cur().features.MaxPriority); l++ {
			st.PurgeRange(store.LevelQueueID(id, uint8(l)), 0, ^uint64(0))
		}
		if q.stored {
			return st.DeleteQueue(v.name, q.name, id)
		}
		st.PurgeRange(id, 0, ^uint64(0))
		return nil
	})
}

// finishQueueDelete runs after the queue left the maps: it drops the messages and tells the
// consumers (server-sent basic.cancel).
func (v *Vhost) finishQueueDelete(q *Queue) int {
	consumers, n := q.Core().Delete()
	q.cmu.Lock()
	clear(q.consumers)
	q.cmu.Unlock()
	for _, c := range consumers {
		if cs, ok := c.(Consumer); ok { // every consumer came through Queue.AddConsumer
			cs.CancelledByServer()
		}
	}
	v.log.Debug().Str("queue", q.name).Int("messages", n).Msg("queue deleted")
	return n
}

// RemoveConsumer unsubscribes c from q and deletes q if it is auto-delete and c was its last
// consumer.
func (v *Vhost) RemoveConsumer(q *Queue, c Consumer) {
	q.cmu.Lock()
	delete(q.consumers, c)
	q.cmu.Unlock()
	if remaining, ok := q.Core().RemoveConsumer(c); ok && remaining == 0 {
		v.autoDeleteQueue(q)
	}
}

// autoDeleteQueue deletes q if it is auto-delete and has no consumers left.
func (v *Vhost) autoDeleteQueue(q *Queue) {
	if !q.autoDelete {
		return
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	if v.queues[q.name] != q || q.Core().Stats().Consumers > 0 {
		v.mu.Unlock()
		return
	}
	v.removeQueueLocked(q)
	v.mu.Unlock()
	v.finishQueueDelete(q)
	if err := v.persist(); err != nil {
		v.log.Error().Err(err).Str("queue", q.name).Msg("auto-delete not persisted")
	}
	v.gone.tell(v.name, q.name)
}

// DeleteExclusiveQueues deletes the exclusive queues of o among names, when o closes.
func (v *Vhost) DeleteExclusiveQueues(o Owner, names []string) {
	if len(names) == 0 {
		return
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	for _, name := range names {
		v.mu.Lock()
		q := v.queues[name]
		if q == nil || q.owner != o {
			v.mu.Unlock()
			continue
		}
		v.removeQueueLocked(q)
		v.mu.Unlock()
		v.finishQueueDelete(q)
	}
	if err := v.persist(); err != nil {
		v.log.Error().Err(err).Msg("deleting exclusive queues not persisted")
	}
}
