package server

import (
	"fmt"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Recover loads durable exchanges, queues and bindings from the store and indexes each queue's
// messages without reading their bodies: bodies are read back as consumers drain. Call it once,
// before Serve.
func (s *Server) Recover() error {
	st := s.cfg.Store
	if st == nil {
		return nil
	}
	start := time.Now()
	xs, qs, bs, err := st.Definitions()
	if err != nil {
		return fmt.Errorf("recover definitions: %w", err)
	}
	clean := st.CleanShutdown()
	for _, x := range xs {
		s.vhostFor(x.Vhost).restoreExchange(x)
	}
	messages := int64(0)
	for _, q := range qs {
		idx, err := st.IndexQueue(q.ID)
		if err != nil {
			return fmt.Errorf("recover queue '%s' in vhost '%s': %w", q.Name, q.Vhost, err)
		}
		if err := s.vhostFor(q.Vhost).restoreQueue(q, idx, clean); err != nil {
			return fmt.Errorf("recover queue '%s' in vhost '%s': %w", q.Name, q.Vhost, err)
		}
		messages += idx.Count
	}
	for _, b := range bs {
		s.vhostFor(b.Vhost).restoreBinding(b)
	}
	s.log.Info().Int("exchanges", len(xs)).Int("queues", len(qs)).Int("bindings", len(bs)).
		Int64("messages", messages).Bool("clean_shutdown", clean).Dur("took", time.Since(start)).
		Msg("recovered from the store")
	return nil
}

// vhostFor returns the named vhost, creating it for definitions recovered from the store.
func (s *Server) vhostFor(name string) *vhost {
	s.vhmu.Lock()
	defer s.vhmu.Unlock()
	v := s.vhosts[name]
	if v == nil {
		v = newVhost(name, s.log, s.cfg.Store, s.cfg.QueueMemory.window())
		s.vhosts[name] = v
	}
	return v
}

func (v *vhost) restoreExchange(x store.Exchange) {
	if _, ok := v.exchanges[x.Name]; ok {
		return // predeclared
	}
	d := exchange.Definition{Name: x.Name, Kind: x.Kind, Durable: x.Durable, AutoDelete: x.AutoDelete,
		Internal: x.Internal, Args: amqpwire.Table(x.Args)}
	r, err := exchange.NewRouter(d.Kind)
	if err != nil {
		v.log.Error().Err(err).Str("exchange", x.Name).Msg("stored exchange has an unknown type; skipped")
		return
	}
	alt, _ := d.AlternateExchange()
	xr := &exchangeRec{def: d, router: r, alternate: alt}
	v.exchangePolicy(xr)
	v.exchanges[x.Name] = xr
}

// restoreQueue rebuilds a durable queue over its stored messages. After an unclean shutdown
// every recovered message may have been delivered before the crash, so each comes back with
// redelivered set.
func (v *vhost) restoreQueue(q store.Queue, idx store.QueueIndex, clean bool) error {
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
	rec := &queueRec{
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
	rec.q = queue.Recover(q.Name, v.queueOptions(rec), levels)
	v.queues[q.Name] = rec
	v.armExpiry(rec)
	return nil
}

func restored(ix store.QueueIndex) queue.Restored {
	return queue.Restored{Count: int(ix.Count), Bytes: int(ix.Bytes), First: ix.FirstSeq, Last: ix.LastSeq}
}

func (v *vhost) restoreBinding(b store.Binding) {
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
