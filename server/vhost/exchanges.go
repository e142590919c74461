package vhost

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/store"
)

// Exchange is a declared exchange.
type Exchange struct {
	def       exchange.Definition
	router    exchange.Router
	alternate string // alternate-exchange argument, "" for none
	// policyAE is the alternate exchange a policy gives, used when the argument is absent.
	// Written under Vhost.mu.
	policyAE string
	// policy is the name of the policy applied, "" for none.
	policy string
	// dedup is the deduplication cache, nil without x-message-deduplication.
	dedup *dedupCache
	// publishIn counts messages published to the exchange, publishOut the queues they were
	// routed to (RabbitMQ's publish_in and publish_out), for listings.
	publishIn, publishOut atomic.Uint64
	// delay holds the messages of a delayed-message exchange (delayed.go); nil for other kinds.
	delay *delayer
}

// Name is the exchange's name ("" for the default exchange).
func (x *Exchange) Name() string { return x.def.Name }

// Kind is the exchange's type ("direct", "topic", ...).
func (x *Exchange) Kind() string { return x.def.Kind }

// Internal says clients may not publish to the exchange.
func (x *Exchange) Internal() bool { return x.def.Internal }

// alternateExchange is where unroutable messages go: the argument, else the policy's.
func (x *Exchange) alternateExchange() string {
	if x.alternate != "" {
		return x.alternate
	}
	return x.policyAE
}

func (v *Vhost) storeExchange(d exchange.Definition) store.Exchange {
	return store.Exchange{Vhost: v.name, Name: d.Name, Kind: d.Kind, Durable: d.Durable,
		AutoDelete: d.AutoDelete, Internal: d.Internal, Args: d.Args}
}

func (v *Vhost) storeBinding(b binding.Binding) store.Binding {
	h, _ := binding.ArgsHash(b.Args) // Args were validated when the binding was made
	return store.Binding{Vhost: v.name, Source: b.Source, DestKind: uint8(b.Dest.Kind), Dest: b.Dest.Name,
		RoutingKey: b.RoutingKey, Args: b.Args, ArgsHash: h}
}

// persists says whether an exchange declared as d is stored: a durable one, or any in a
// cluster (Registry.PersistTransientExchanges).
func (v *Vhost) persists(d exchange.Definition) bool {
	return v.st != nil && (d.Durable || (v.keepTransient != nil && v.keepTransient.Load()))
}

// bindingDurableLocked says whether b is persisted: both its ends are (RabbitMQ's rule).
func (v *Vhost) bindingDurableLocked(b binding.Binding) bool {
	x := v.exchanges[b.Source]
	if x == nil || !v.persists(x.def) {
		return false
	}
	if b.Dest.Kind == binding.DestExchange {
		d := v.exchanges[b.Dest.Name]
		return d != nil && v.persists(d.def)
	}
	q := v.queues[b.Dest.Name]
	return q != nil && q.stored
}

func (v *Vhost) recordBindingDelete(b binding.Binding) {
	sb := v.storeBinding(b)
	v.record(func(st *store.Store) error { return st.DeleteBinding(sb) })
}

func errDefaultExchange() error {
	return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0, "operation not permitted on the default exchange")
}

// Exchange returns the named exchange, or RabbitMQ's 404.
func (v *Vhost) Exchange(name string) (*Exchange, error) {
	v.mu.RLock()
	x := v.exchanges[name]
	v.mu.RUnlock()
	if x == nil {
		return nil, v.errNoExchange(name)
	}
	return x, nil
}

// DeclareExchange creates an exchange or checks a redeclare against the existing one.
func (v *Vhost) DeclareExchange(d exchange.Definition, passive bool) error {
	if d.Name == "" {
		// RabbitMQ refuses even a passive declare of the default exchange.
		return errDefaultExchange()
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.RLock()
	x := v.exchanges[d.Name]
	v.mu.RUnlock()
	if passive {
		if x == nil {
			return v.errNoExchange(d.Name)
		}
		return nil
	}
	if x != nil {
		if err := x.def.Equivalent(v.name, d); err != nil {
			return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "%s", err.Error())
		}
		return nil
	}
	if strings.HasPrefix(d.Name, "amq.") {
		return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
			"exchange name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	if d.Kind != exchange.KindDelayed && !exchange.KnownKind(d.Kind) {
		// RabbitMQ treats an unknown type as a hard error.
		return amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, 0, 0, "unknown exchange type '%s'", d.Kind)
	}
	r, err := newRouter(d)
	if err != nil {
		return err
	}
	da, err := exchangeDedupArgs(d, v.name)
	if err != nil {
		return err
	}
	alt, _ := d.AlternateExchange()
	var dst *store.Store
	if v.persists(d) {
		if da.on {
			if err := v.freshDedup(store.DedupExchange, d.Name); err != nil {
				return v.persistFailed(err)
			}
		}
		if err := v.st.PutExchange(v.storeExchange(d)); err != nil {
			return v.persistFailed(err)
		}
		dst = v.st
	}
	v.mu.Lock()
	xr := &Exchange{def: d, router: r, alternate: alt, dedup: v.newDedupCache(da, store.DedupExchange, d.Name, dst)}
	if d.Delayed() {
		xr.delay = newDelayer(v, xr)
	}
	v.exchangePolicy(xr)
	v.exchanges[d.Name] = xr
	v.mu.Unlock()
	return nil
}

// HasExchange reports whether the vhost has the named exchange.
func (v *Vhost) HasExchange(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.exchanges[name] != nil
}

// CheckExchangeEquivalent is the redeclare check for d, without declaring: nil when there is
// no such exchange.
func (v *Vhost) CheckExchangeEquivalent(d exchange.Definition) error {
	v.mu.RLock()
	x := v.exchanges[d.Name]
	v.mu.RUnlock()
	if x == nil {
		return nil
	}
	return x.def.Equivalent(v.name, d)
}

// DeleteExchange removes an exchange and every binding from or to it. A missing exchange is not
// an error (RabbitMQ's delete is idempotent).
// ExchangeInUse says whether the exchange name has bindings from it, or is the destination
// of one (exchange.delete's if-unused).
func (v *Vhost) ExchangeInUse(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.exchangeInUseLocked(name)
}

func (v *Vhost) exchangeInUseLocked(name string) bool {
	x := v.exchanges[name]
	return x != nil && (x.router.Len() > 0 || v.isDestinationLocked(binding.Destination{Kind: binding.DestExchange, Name: name}))
}

func (v *Vhost) DeleteExchange(name string, ifUnused bool) error {
	if name == "" {
		return errDefaultExchange()
	}
	if strings.HasPrefix(name, "amq.") {
		return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
			"exchange '%s' in vhost '%s' is a predeclared system exchange and cannot be deleted", name, v.name)
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	x := v.exchanges[name]
	if x == nil {
		v.mu.Unlock()
		return nil
	}
	if ifUnused && v.exchangeInUseLocked(name) {
		v.mu.Unlock()
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "exchange '%s' in vhost '%s' in use", name, v.name)
	}
	v.removeExchangeLocked(name)
	v.mu.Unlock()
	return v.persist()
}

// newRouter is the router of a new exchange: its kind's, or for a delayed-message exchange
// the x-delayed-type kind's, with RabbitMQ's errors: the plugin's 406 for a missing
// x-delayed-type, 503 for an unknown kind.
func newRouter(d exchange.Definition) (exchange.Router, error) {
	kind, err := d.RouterKind()
	if errors.Is(err, exchange.ErrUnknownKind) {
		return nil, amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, 0, 0, "%s", err.Error())
	}
	if err != nil {
		return nil, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "%s", err.Error())
	}
	rd := d
	rd.Kind = kind // a delayed-message exchange routes as its x-delayed-type, with its arguments
	r, err := exchange.New(rd)
	if err != nil {
		return nil, amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, 0, 0, "%s", err.Error())
	}
	return r, nil
}

// dropHeldLocked ends the delayer of an exchange being deleted (mu held) and records the
// deletion of its held messages, as the plugin drops them with the exchange.
func (v *Vhost) dropHeldLocked(x *Exchange) {
	if x.delay == nil {
		return
	}
	x.delay.stop()
	name := x.def.Name
	v.record(func(st *store.Store) error {
		n, err := st.DropDelayed(v.name, name)
		if n > 0 {
			v.log.Info().Str("exchange", name).Int64("messages", n).Msg("held messages of a deleted delayed-message exchange dropped")
		}
		return err
	})
}

// removeExchangeLocked deletes an exchange with its bindings from and to it.
func (v *Vhost) removeExchangeLocked(name string) {
	x := v.exchanges[name]
	for _, b := range x.router.Bindings() {
		if v.bindingDurableLocked(b) {
			v.recordBindingDelete(b)
		}
	}
	v.removeDestinationLocked(binding.Destination{Kind: binding.DestExchange, Name: name})
	delete(v.exchanges, name)
	v.dropDedupLocked(x.dedup)
	v.dropHeldLocked(x)
	if v.persists(x.def) {
		v.record(func(st *store.Store) error { return st.DeleteExchange(v.name, name) })
	}
}

// isDestinationLocked reports whether some exchange has a binding to d.
func (v *Vhost) isDestinationLocked(d binding.Destination) bool {
	for _, x := range v.exchanges {
		if x.router.HasDestination(d) {
			return true
		}
	}
	return false
}

// removeDestinationLocked drops every binding to d and deletes auto-delete exchanges that lose
// their last binding that way.
func (v *Vhost) removeDestinationLocked(d binding.Destination) {
	for name, x := range v.exchanges {
		if !x.router.HasDestination(d) {
			continue
		}
		for _, b := range x.router.Bindings() {
			if b.Dest == d && v.bindingDurableLocked(b) {
				v.recordBindingDelete(b)
			}
		}
		if len(x.router.RemoveDestination(d)) > 0 {
			v.autoDeleteExchangeLocked(name, x)
		}
	}
}

// autoDeleteExchangeLocked deletes an auto-delete exchange that has no bindings left.
func (v *Vhost) autoDeleteExchangeLocked(name string, x *Exchange) {
	if x.def.AutoDelete && x.router.Len() == 0 && v.exchanges[name] == x {
		v.log.Debug().Str("exchange", name).Msg("auto-deleting exchange")
		v.removeExchangeLocked(name)
	}
}

// checkLocalRandomLocked is RabbitMQ 4.0's rule for x-local-random bindings: the destination
// must be a classic queue (the key is the router's to check).
func (v *Vhost) checkLocalRandomLocked(b binding.Binding) error {
	if b.RoutingKey != "" {
		return nil // the router refuses it, as RabbitMQ checks the key first
	}
	q := v.queues[b.Dest.Name]
	if b.Dest.Kind != binding.DestQueue || q == nil {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "Destination not found")
	}
	if q.declared.quorum {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
			"Queue type rabbit_quorum_queue not valid for this exchange type")
	}
	return nil
}

// Bind adds b for o. The source must exist and not be the default exchange; the destination
// must exist and, if it is an exclusive queue, belong to o (405 otherwise).
func (v *Vhost) Bind(o Owner, b binding.Binding) error {
	if b.Source == "" || (b.Dest.Kind == binding.DestExchange && b.Dest.Name == "") {
		return errDefaultExchange()
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.RLock()
	x := v.exchanges[b.Source]
	err := v.checkDestinationLocked(o, b.Dest)
	if err == nil && x == nil {
		err = v.errNoExchange(b.Source)
	}
	if err == nil && x.def.Kind == exchange.KindLocalRandom {
		err = v.checkLocalRandomLocked(b)
	}
	durable := err == nil && v.bindingDurableLocked(b)
	v.mu.RUnlock()
	if err != nil {
		return err
	}
	added, err := x.router.Bind(b)
	if err != nil {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "%s", err.Error())
	}
	if added && durable {
		if err := v.st.PutBinding(v.storeBinding(b)); err != nil {
			x.router.Unbind(b)
			return v.persistFailed(err)
		}
	}
	return nil
}

func (v *Vhost) checkDestinationLocked(o Owner, d binding.Destination) error {
	if d.Kind == binding.DestExchange {
		if v.exchanges[d.Name] == nil {
			return v.errNoExchange(d.Name)
		}
		return nil
	}
	q := v.queues[d.Name]
	if q == nil {
		return v.ErrNoQueue(d.Name)
	}
	if q.owner != nil && q.owner != o {
		return v.errLocked(d.Name)
	}
	return nil
}

// Unbind removes b for o; a missing binding is not an error, as in RabbitMQ.
func (v *Vhost) Unbind(o Owner, b binding.Binding) error {
	if b.Source == "" || (b.Dest.Kind == binding.DestExchange && b.Dest.Name == "") {
		return errDefaultExchange()
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	if b.Dest.Kind == binding.DestQueue {
		if q := v.queues[b.Dest.Name]; q != nil && q.owner != nil && q.owner != o {
			v.mu.Unlock()
			return v.errLocked(b.Dest.Name)
		}
	}
	x := v.exchanges[b.Source]
	if x != nil {
		durable := v.bindingDurableLocked(b)
		if x.router.Unbind(b) {
			if durable {
				v.recordBindingDelete(b)
			}
			v.autoDeleteExchangeLocked(b.Source, x)
		}
	}
	v.mu.Unlock()
	return v.persist()
}
