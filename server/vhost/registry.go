package vhost

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Registry is the broker's set of vhosts.
type Registry struct {
	log    zerolog.Logger
	st     *store.Store // nil: nothing is persisted
	window queue.Window // the queue window of vhosts created from now on

	churn QueueChurn // shared by its vhosts
	// gone is told of the queues its vhosts delete by themselves (remote.go).
	gone queueGone
	// fwd takes the messages routed to remote queues (forward.go).
	fwd forwardHook
	// keepTransient: non-durable exchanges and their bindings are persisted too (a cluster
	// node's replicated model must survive its restart: PersistTransientExchanges).
	keepTransient atomic.Bool

	mu     sync.RWMutex
	vhosts map[string]*Vhost
}

// NewRegistry returns a registry with the vhost "/". Its vhosts persist to st (nil for
// none) and their queues start with window.
func NewRegistry(log zerolog.Logger, st *store.Store, window queue.Window) *Registry {
	r := &Registry{log: log, st: st, window: window, vhosts: make(map[string]*Vhost)}
	v := New("/", log, st, window)
	v.churn, v.gone, v.fwd, v.keepTransient = &r.churn, &r.gone, &r.fwd, &r.keepTransient
	r.vhosts["/"] = v
	return r
}

// PersistTransientExchanges makes the vhosts store non-durable exchanges and the bindings
// from and to them as they store durable ones. A cluster node needs it: such exchanges are
// part of the replicated model, which a node that restarts keeps from its store (it does not
// apply again what it applied before), so without it the node would lose them while the
// others keep them. They then outlive a restart of the whole cluster too, unlike RabbitMQ's.
func (r *Registry) PersistTransientExchanges() { r.keepTransient.Store(true) }

// Get returns the named vhost, nil if there is none.
func (r *Registry) Get(name string) *Vhost {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.vhosts[name]
}

// Ensure returns the named vhost, creating it if needed (definitions, recovery).
func (r *Registry) Ensure(name string) *Vhost {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.vhosts[name]
	if v == nil {
		v = New(name, r.log, r.st, r.window)
		v.churn, v.gone, v.fwd, v.keepTransient = &r.churn, &r.gone, &r.fwd, &r.keepTransient
		r.vhosts[name] = v
	}
	return v
}

// List returns the vhosts there are now.
func (r *Registry) List() []*Vhost {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vhosts := make([]*Vhost, 0, len(r.vhosts))
	for _, v := range r.vhosts {
		vhosts = append(vhosts, v)
	}
	return vhosts
}

// Recover loads durable exchanges, queues and bindings from the store and indexes each queue's
// messages without reading their bodies: bodies are read back as consumers drain. Call it once,
// before clients connect.
func (r *Registry) Recover() error {
	st := r.st
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
		r.Ensure(x.Vhost).restoreExchange(x)
	}
	messages := int64(0)
	for _, q := range qs {
		idx, err := st.IndexQueue(q.ID)
		if err != nil {
			return fmt.Errorf("recover queue '%s' in vhost '%s': %w", q.Name, q.Vhost, err)
		}
		if err := r.Ensure(q.Vhost).restoreQueue(q, idx, clean); err != nil {
			return fmt.Errorf("recover queue '%s' in vhost '%s': %w", q.Name, q.Vhost, err)
		}
		messages += idx.Count
	}
	for _, b := range bs {
		r.Ensure(b.Vhost).restoreBinding(b)
	}
	held, err := r.recoverHeld()
	if err != nil {
		return err
	}
	r.log.Info().Int("exchanges", len(xs)).Int("queues", len(qs)).Int("bindings", len(bs)).
		Int64("messages", messages).Int64("held_messages", held).Bool("clean_shutdown", clean).Dur("took", time.Since(start)).
		Msg("recovered from the store")
	return nil
}

// recoverHeld starts the delayed-message exchanges over their stored messages, and drops the
// stored messages of exchanges that are gone (deleted, or not durable) and transient ones.
func (r *Registry) recoverHeld() (int64, error) {
	counts, err := r.st.IndexDelayed()
	if err != nil {
		return 0, fmt.Errorf("recover delayed messages: %w", err)
	}
	var held int64
	for _, c := range counts {
		var x *Exchange
		if v := r.Get(c.Vhost); v != nil {
			v.mu.RLock()
			x = v.exchanges[c.Exchange]
			v.mu.RUnlock()
		}
		if x == nil || x.delay == nil {
			n, err := r.st.DropDelayed(c.Vhost, c.Exchange)
			if err != nil {
				return 0, fmt.Errorf("drop delayed messages of a deleted exchange: %w", err)
			}
			r.log.Info().Str("vhost", c.Vhost).Str("exchange", c.Exchange).Int64("messages", n).
				Msg("dropped the held messages of an exchange that is gone")
			continue
		}
		x.delay.recovered(c.Count)
		held += c.Count
	}
	return held, nil
}

// StopDelayed stops every delayed-message exchange's timer (broker shutdown): what they hold
// stays in the store for the next start.
func (r *Registry) StopDelayed() {
	for _, v := range r.List() {
		v.mu.RLock()
		for _, x := range v.exchanges {
			if x.delay != nil {
				x.delay.stop()
			}
		}
		v.mu.RUnlock()
	}
}

// Remove takes the named vhost out of the registry and returns it, nil if there is none.
// The caller deletes its queues and exchanges first (the management API's vhost delete).
func (r *Registry) Remove(name string) *Vhost {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.vhosts[name]
	delete(r.vhosts, name)
	return v
}
