// Package vhost is Warren's broker model: virtual hosts with their exchanges, queues,
// bindings and policies, argument validation, dead-lettering, queue expiry, the store
// adapter of each queue, recovery from the store and export. It knows no protocol: the AMQP
// layer (package server), the definitions loader, tests and a management API all drive it
// through the same calls (declare, bind, unbind, delete, Publish) and read it through
// snapshots (snapshot.go).
//
// What the model needs of a client it gets through small interfaces: an Owner holds
// exclusive queues (a connection), a Consumer is told when its queue goes away, a Confirm
// counts a publish's store writes. Errors are amqpwire errors with RabbitMQ's reply codes and
// texts, which the protocol layer sends as they are.
//
// Lock order, never taken the other way: Vhost.defs → Vhost.mu → queue lock (and then the
// protocol's locks that a delivery takes).
package vhost

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Owner is the holder of exclusive queues: the connection that declared them. Owners are
// compared by identity; a nil Owner (definitions, tests) owns nothing.
type Owner interface {
	// OwnerName names the owner in listings (a connection's peer address and number).
	OwnerName() string
}

// Consumer is a subscription to a queue as the model sees it: the queue core delivers to it,
// and the model tells it when its queue is deleted under it.
type Consumer interface {
	queue.Consumer
	// CancelledByServer is called, without model locks held, after the consumer's queue was
	// deleted (by a client, expiry, auto-delete or an exclusive owner closing).
	CancelledByServer()
}

// Vhost holds the exchanges and queues of one virtual host.
//
// defs serialises changes to definitions and is held across their store writes; mu guards the
// two maps and is held only for map edits, so publishers (who take mu shared to route) never
// wait for a disk sync.
type Vhost struct {
	name   string
	log    zerolog.Logger
	st     *store.Store                 // nil: nothing is persisted
	clock  queue.Clock                  // held messages' due times (delayed.go), deduplication windows (dedup.go); tests replace it
	window atomic.Pointer[queue.Window] // for queues declared from now on; see setWindow
	churn  *QueueChurn                  // the registry's; nil for a vhost made outside one
	gone   *queueGone                   // the registry's; nil for a vhost made outside one
	fwd    *forwardHook                 // the registry's; nil for a vhost made outside one
	// keepTransient is the registry's (PersistTransientExchanges); nil outside one.
	keepTransient *atomic.Bool

	defs sync.Mutex
	ops  []func(*store.Store) error // store deletes collected under mu; guarded by defs

	mu        sync.RWMutex
	exchanges map[string]*Exchange
	queues    map[string]*Queue

	// policies are sorted by priority, highest first (policy.go); replaced under defs.
	policies atomic.Pointer[[]*Policy]
}

// New returns the vhost name with its predeclared exchanges. st may be nil (nothing is
// persisted); window is the memory window of the queues declared in it.
func New(name string, log zerolog.Logger, st *store.Store, window queue.Window) *Vhost {
	v := &Vhost{
		name:      name,
		log:       log.With().Str("vhost", name).Logger(),
		st:        st,
		clock:     queue.RealClock{},
		exchanges: make(map[string]*Exchange),
		queues:    make(map[string]*Queue),
	}
	for _, d := range exchange.Predeclared() {
		r, err := exchange.NewRouter(d.Kind)
		if err != nil {
			// Predeclared kinds are built in; a failure here is a programming error caught by tests.
			v.log.Error().Err(err).Str("exchange", d.Name).Msg("cannot create predeclared exchange")
			continue
		}
		v.exchanges[d.Name] = &Exchange{def: d, router: r}
	}
	v.policies.Store(new([]*Policy))
	v.window.Store(&window)
	return v
}

// Name is the vhost's name.
func (v *Vhost) Name() string { return v.name }

// Window is the memory window of queues declared from now on.
func (v *Vhost) Window() queue.Window { return *v.window.Load() }

// SetWindow sets the window of queues declared from now on and returns the queues that exist,
// for the caller to give them the window too (the memory alarm's paging).
func (v *Vhost) SetWindow(w queue.Window) []*queue.Queue {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.window.Store(&w)
	qs := make([]*queue.Queue, 0, len(v.queues))
	for _, rec := range v.queues {
		if c := rec.Core(); c != nil {
			qs = append(qs, c)
		}
	}
	return qs
}

func (v *Vhost) errNoExchange(name string) error {
	return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no exchange '%s' in vhost '%s'", name, v.name)
}

// ErrNoQueue is RabbitMQ's 404 for a queue that does not exist.
func (v *Vhost) ErrNoQueue(name string) error {
	return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no queue '%s' in vhost '%s'", name, v.name)
}

func (v *Vhost) errLocked(name string) error {
	return amqpwire.NewChannelError(amqpwire.CodeResourceLocked, 0, 0,
		"cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
		name, v.name)
}

// persistFailed is the error for a definition the store could not write: the broker cannot keep
// its promise, so the connection ends with 541.
func (v *Vhost) persistFailed(err error) error {
	v.log.Error().Err(err).Msg("persisting a definition failed")
	return amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0, "failed to persist definition: %v", err)
}

// record queues a store write to run after mu is released; the caller holds defs and mu.
func (v *Vhost) record(op func(*store.Store) error) {
	if v.st != nil {
		v.ops = append(v.ops, op)
	}
}

// persist runs the recorded store writes, concurrently so the group-commit writer batches them.
func (v *Vhost) persist() error {
	ops := v.ops
	v.ops = nil
	if len(ops) == 0 {
		return nil
	}
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = op(v.st)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return v.persistFailed(err)
	}
	return nil
}
