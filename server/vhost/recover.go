package vhost

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

func (v *Vhost) restoreExchange(x store.Exchange) {
	if _, ok := v.exchanges[x.Name]; ok {
		return // predeclared
	}
	d := exchange.Definition{Name: x.Name, Kind: x.Kind, Durable: x.Durable, AutoDelete: x.AutoDelete,
		Internal: x.Internal, Args: amqpwire.Table(x.Args)}
	r, err := newRouter(d)
	if err != nil {
		v.log.Error().Err(err).Str("exchange", x.Name).Msg("stored exchange has an unknown type; skipped")
		return
	}
	alt, _ := d.AlternateExchange()
	xr := &Exchange{def: d, router: r, alternate: alt}
	if da, err := exchangeDedupArgs(d, v.name); err != nil {
		v.log.Error().Err(err).Str("exchange", x.Name).Msg("stored exchange arguments invalid; deduplication off")
	} else if xr.dedup = v.newDedupCache(da, store.DedupExchange, d.Name, v.st); xr.dedup != nil {
		xr.dedup.load()
	}
	if d.Delayed() {
		xr.delay = newDelayer(v, xr)
	}
	v.exchangePolicy(xr)
	v.exchanges[x.Name] = xr
}

// restoreQueue rebuilds a durable queue over its stored messages. After an unclean shutdown
// every recovered message may have been delivered before the crash, so each comes back with
// redelivered set.
func (v *Vhost) restoreQueue(q store.Queue, idx store.QueueIndex, clean bool) error {
	j := &journal{st: v.st, id: q.ID, log: v.log}
	if !clean {
		j.recoveredThrough = idx.LastSeq
	}
	qa, err := parseQueueArgs(q.Name, v.name, amqpwire.Table(q.Args))
	if err != nil {
		// Validated when declared; a failure now means the record is damaged. Keep the queue
		// and its messages, without the features.
		v.log.Error().Err(err).Str("queue", q.Name).Msg("stored queue arguments invalid; ignored")
		qa = queueArgs{features: queue.NoFeatures}
	}
	rec := &Queue{
		name:       q.Name,
		durable:    true,
		autoDelete: q.AutoDelete,
		args:       amqpwire.Table(q.Args),
		journal:    j,
		stored:     true,
		declared:   qa,
	}
	pol := v.policyFor(policyQueues, q.Name)
	eff := qa.withPolicy(pol, false)
	eff.features.MaxPriority = restoredPriority(amqpwire.Table(q.Args), qa)
	v.setEffective(rec, eff, pol)
	levels := []queue.Restored{restored(idx)}
	for l := 1; l <= int(rec.cur().features.MaxPriority); l++ {
		lidx, err := v.st.IndexQueue(store.LevelQueueID(q.ID, uint8(l)))
		if err != nil {
			return err
		}
		levels = append(levels, restored(lidx))
		if !clean {
			j.recoveredThrough = max(j.recoveredThrough, lidx.LastSeq)
		}
	}
	rec.dedup = v.newDedupCache(qa.dedup, store.DedupQueue, q.Name, v.st)
	if rec.dedup != nil {
		rec.dedup.load()
	}
	rec.core.Store(queue.Recover(q.Name, v.queueOptions(rec), levels))
	v.queues[q.Name] = rec
	v.armExpiry(rec)
	return nil
}

func restored(ix store.QueueIndex) queue.Restored {
	return queue.Restored{Count: int(ix.Count), Bytes: int(ix.Bytes), First: ix.FirstSeq, Last: ix.LastSeq}
}

func (v *Vhost) restoreBinding(b store.Binding) {
	bd := binding.Binding{Source: b.Source, Dest: binding.Destination{Kind: binding.DestKind(b.DestKind), Name: b.Dest},
		RoutingKey: b.RoutingKey, Args: amqpwire.Table(b.Args)}
	x := v.exchanges[b.Source]
	var destOK bool
	if bd.Dest.Kind == binding.DestExchange {
		destOK = v.exchanges[b.Dest] != nil
	} else {
		destOK = v.queues[b.Dest] != nil
	}
	if x == nil || !destOK {
		v.log.Warn().Str("source", b.Source).Str("destination", b.Dest).Msg("stored binding refers to a missing exchange or queue; dropped")
		if err := v.st.DeleteBinding(b); err != nil {
			v.log.Error().Err(err).Msg("dropping a dangling binding")
		}
		return
	}
	if _, err := x.router.Bind(bd); err != nil {
		v.log.Error().Err(err).Str("source", b.Source).Str("destination", b.Dest).Msg("stored binding refused by its exchange; skipped")
	}
}
