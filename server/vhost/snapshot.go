package vhost

import (
	"cmp"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/queue"
)

// Read-only snapshots for listing (rabbitmqctl list_queues, list_exchanges, list_bindings, a
// management API, tests). Each is a copy taken under the vhost's lock: later changes do not
// show in it, and holding it holds no lock.

// QueueInfo is one queue as a listing shows it.
type QueueInfo struct {
	Name       string
	Durable    bool
	AutoDelete bool
	// Owner names the connection of an exclusive queue (Owner.OwnerName), "" otherwise.
	Owner     string
	Arguments amqpwire.Table
	Policy    string // the policy applied, "" for none
	Type      string // x-queue-type: classic or quorum
	// Ready messages wait for a consumer; Unacked were delivered and await an ack.
	Ready, Unacked, Consumers int
	ReadyBytes                int
	// Counts are the queue's message counters (publish, deliver, ack, ...).
	Counts queue.CounterValues
	// Holder is the cluster node that holds the queue when it is not this one (Queue.Remote).
	Holder string
	// Deduplication says the queue has x-message-deduplication; Deduplicated counts the
	// duplicates it dropped and DedupIDs the ids its cache holds.
	Deduplication          bool
	Deduplicated, DedupIDs uint64
}

// Exclusive says the queue belongs to one connection.
func (q QueueInfo) Exclusive() bool { return q.Owner != "" }

// ExchangeInfo is one exchange as a listing shows it.
type ExchangeInfo struct {
	Name       string // "" is the default exchange
	Kind       string
	Durable    bool
	AutoDelete bool
	Internal   bool
	Arguments  amqpwire.Table
	Policy     string // the policy applied, "" for none
	// PublishIn counts messages published to the exchange, PublishOut the queues they were
	// routed to.
	PublishIn, PublishOut uint64
	// Deduplication, Deduplicated and DedupIDs are as QueueInfo's.
	Deduplication          bool
	Deduplicated, DedupIDs uint64
}

// Queues lists the vhost's queues by name, with their message and consumer counts.
func (v *Vhost) Queues() []QueueInfo {
	v.defs.Lock() // a queue's policy name is written under defs
	v.mu.RLock()
	qs := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		qs = append(qs, q)
	}
	infos := make([]QueueInfo, 0, len(qs))
	for _, q := range qs {
		infos = append(infos, QueueInfo{Name: q.name, Durable: q.durable, AutoDelete: q.autoDelete, Arguments: q.args, Policy: q.policy,
			Type: q.declared.Type(), Holder: q.Remote()})
	}
	v.mu.RUnlock()
	v.defs.Unlock()
	// The owners' names and the counts (under each queue's own lock) are read outside the
	// vhost's lock.
	for i, q := range qs {
		if q.owner != nil {
			infos[i].Owner = q.owner.OwnerName()
		}
		st := q.Stats()
		infos[i].Ready, infos[i].Unacked, infos[i].Consumers, infos[i].ReadyBytes = st.Ready, st.Unacked, st.Consumers, st.ReadyBytes
		infos[i].Counts = q.Core().Counters().Load()
		infos[i].Deduplication, infos[i].Deduplicated, infos[i].DedupIDs = q.dedup.stats()
	}
	slices.SortFunc(infos, func(a, b QueueInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos
}

// Exchanges lists the vhost's exchanges by name, the default exchange ("") and the
// predeclared amq.* ones included, as RabbitMQ lists them.
func (v *Vhost) Exchanges() []ExchangeInfo {
	v.mu.RLock()
	infos := make([]ExchangeInfo, 0, len(v.exchanges))
	for _, x := range v.exchanges {
		d := x.def
		infos = append(infos, ExchangeInfo{Name: d.Name, Kind: d.Kind, Durable: d.Durable, AutoDelete: d.AutoDelete,
			Internal: d.Internal, Arguments: d.Args, Policy: x.policy,
			PublishIn: x.publishIn.Load(), PublishOut: x.publishOut.Load()})
		last := &infos[len(infos)-1]
		last.Deduplication, last.Deduplicated, last.DedupIDs = x.dedup.stats()
	}
	v.mu.RUnlock()
	slices.SortFunc(infos, func(a, b ExchangeInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos
}

// Bindings lists the vhost's bindings ordered by source, destination kind and name, and
// routing key. As in RabbitMQ's list_bindings, each queue's implicit binding from the default
// exchange ("", routing key the queue's name) is listed too.
func (v *Vhost) Bindings() []binding.Binding {
	v.mu.RLock()
	var bs []binding.Binding
	for name := range v.queues {
		bs = append(bs, binding.Binding{Dest: binding.Destination{Kind: binding.DestQueue, Name: name}, RoutingKey: name})
	}
	for name, x := range v.exchanges {
		if name != "" {
			bs = append(bs, x.router.Bindings()...)
		}
	}
	v.mu.RUnlock()
	slices.SortStableFunc(bs, func(a, b binding.Binding) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), cmp.Compare(a.Dest.Kind, b.Dest.Kind),
			strings.Compare(a.Dest.Name, b.Dest.Name), strings.Compare(a.RoutingKey, b.RoutingKey))
	})
	return bs
}

// ConsumerInfo is one consumer as a listing shows it.
type ConsumerInfo struct {
	Queue     string
	Tag       string
	Exclusive bool
	NoAck     bool
	Priority  int32 // x-priority
}

// Consumers lists the consumers of the vhost's queues, by queue and tag.
func (v *Vhost) Consumers() []ConsumerInfo {
	v.mu.RLock()
	qs := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		qs = append(qs, q)
	}
	v.mu.RUnlock()
	var infos []ConsumerInfo
	for _, q := range qs {
		q.cmu.Lock()
		for _, r := range q.consumers {
			infos = append(infos, ConsumerInfo{Queue: q.name, Tag: r.tag, Exclusive: r.opts.Exclusive, NoAck: r.opts.NoAck, Priority: r.opts.Priority})
		}
		q.cmu.Unlock()
	}
	slices.SortFunc(infos, func(a, b ConsumerInfo) int {
		return cmp.Or(strings.Compare(a.Queue, b.Queue), strings.Compare(a.Tag, b.Tag))
	})
	return infos
}
