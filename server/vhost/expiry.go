package vhost

import "time"

// armExpiry starts x-expires for rec: an unused queue (no consumers, no get, no redeclare for
// the period) is deleted, without dead-lettering its messages.
func (v *Vhost) armExpiry(rec *Queue) {
	expires := rec.cur().expires
	if expires == 0 {
		return
	}
	rec.touch()
	rec.expiry = time.AfterFunc(expires, func() { v.checkExpiry(rec) })
}

func (v *Vhost) checkExpiry(rec *Queue) {
	expires := rec.cur().expires
	if expires == 0 || rec.Remote() != "" {
		return // a policy took x-expires away; applyPolicy re-arms if one brings it back
	}
	idle := time.Since(time.UnixMilli(rec.lastUsed.Load()))
	if rec.Core().Stats().Consumers > 0 {
		rec.touch()
		rec.expiry.Reset(expires)
		return
	}
	if idle < expires {
		rec.expiry.Reset(expires - idle)
		return
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	if v.queues[rec.name] != rec {
		v.mu.Unlock()
		return
	}
	v.log.Info().Str("queue", rec.name).Dur("expires", expires).Msg("queue expired unused; deleting it")
	v.removeQueueLocked(rec)
	v.mu.Unlock()
	v.finishQueueDelete(rec)
	if err := v.persist(); err != nil {
		v.log.Error().Err(err).Str("queue", rec.name).Msg("queue expiry not persisted")
	}
	v.gone.tell(v.name, rec.name)
}
