package server

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// exchangeRec is a declared exchange.
type exchangeRec struct {
	def       exchange.Definition
	router    exchange.Router
	alternate string // alternate-exchange argument, "" for none
	// policyAE is the alternate exchange a policy gives, used when the argument is absent.
	// Written under vhost.mu.
	policyAE string
	// policy is the name of the policy applied, "" for none.
	policy string
}

// alternateExchange is where unroutable messages go: the argument, else the policy's.
func (x *exchangeRec) alternateExchange() string {
	if x.alternate != "" {
		return x.alternate
	}
	return x.policyAE
}

// queueRec is a declared queue and the metadata the protocol checks against.
type queueRec struct {
	q          *queue.Queue
	name       string
	durable    bool
	autoDelete bool
	owner      *conn // the declaring connection of an exclusive queue, nil otherwise
	args       amqpwire.Table
	// journal is the queue's view of the store (nil without one); stored says the queue has a
	// record there, so it and its persistent messages survive a restart.
	journal *journal
	stored  bool
	// declared are the validated x-arguments; eff is what the queue acts on, the arguments
	// combined with the policy that applies (policy.go). lastUsed and expiry implement x-expires.
	declared queueArgs
	eff      atomic.Pointer[queueArgs]
	policy   string // name of the policy applied; written under vhost.defs
	lastUsed atomic.Int64
	expiry   *time.Timer
}

// cur returns the queue's effective arguments.
func (q *queueRec) cur() *queueArgs { return q.eff.Load() }

// touch records a use of the queue for x-expires.
func (q *queueRec) touch() {
	if q.cur().expires != 0 {
		q.lastUsed.Store(time.Now().UnixMilli())
	}
}

// queueOptions configure the queue core for rec: its journal, features and dead-letter hook.
func (v *vhost) queueOptions(rec *queueRec) queue.Options {
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

// armExpiry starts x-expires for rec: an unused queue (no consumers, no get, no redeclare for
// the period) is deleted, without dead-lettering its messages.
func (v *vhost) armExpiry(rec *queueRec) {
	expires := rec.cur().expires
	if expires == 0 {
		return
	}
	rec.touch()
	rec.expiry = time.AfterFunc(expires, func() { v.checkExpiry(rec) })
}

func (v *vhost) checkExpiry(rec *queueRec) {
	expires := rec.cur().expires
	if expires == 0 {
		return // a policy took x-expires away; applyPolicy re-arms if one brings it back
	}
	idle := time.Since(time.UnixMilli(rec.lastUsed.Load()))
	if rec.q.Stats().Consumers > 0 {
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
}

// vhost holds the exchanges and queues of one virtual host.
//
// defs serialises changes to definitions and is held across their store writes; mu guards the
// two maps and is held only for map edits, so publishers (who take mu shared to route) never
// wait for a disk sync.
type vhost struct {
	name   string
	log    zerolog.Logger
	st     *store.Store                 // nil: nothing is persisted
	window atomic.Pointer[queue.Window] // for queues declared from now on; see setWindow

	defs sync.Mutex
	ops  []func(*store.Store) error // store deletes collected under mu; guarded by defs

	mu        sync.RWMutex
	exchanges map[string]*exchangeRec
	queues    map[string]*queueRec

	// policies are sorted by priority, highest first (policy.go); replaced under defs.
	policies atomic.Pointer[[]*Policy]
}

func newVhost(name string, log zerolog.Logger, st *store.Store, window queue.Window) *vhost {
	v := &vhost{
		name:      name,
		log:       log.With().Str("vhost", name).Logger(),
		st:        st,
		exchanges: make(map[string]*exchangeRec),
		queues:    make(map[string]*queueRec),
	}
	for _, d := range exchange.Predeclared() {
		r, err := exchange.NewRouter(d.Kind)
		if err != nil {
			// Predeclared kinds are built in; a failure here is a programming error caught by tests.
			v.log.Error().Err(err).Str("exchange", d.Name).Msg("cannot create predeclared exchange")
			continue
		}
		v.exchanges[d.Name] = &exchangeRec{def: d, router: r}
	}
	v.policies.Store(new([]*Policy))
	v.window.Store(&window)
	return v
}

// setWindow sets the window of queues declared from now on and returns the queues that exist,
// for the caller to give them the window too (the memory alarm's paging, resources.go).
func (v *vhost) setWindow(w queue.Window) []*queue.Queue {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.window.Store(&w)
	qs := make([]*queue.Queue, 0, len(v.queues))
	for _, rec := range v.queues {
		if rec.q != nil {
			qs = append(qs, rec.q)
		}
	}
	return qs
}

func (v *vhost) errNoExchange(name string) error {
	return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no exchange '%s' in vhost '%s'", name, v.name)
}

func (v *vhost) errNoQueue(name string) error {
	return amqpwire.NewChannelError(amqpwire.CodeNotFound, 0, 0, "no queue '%s' in vhost '%s'", name, v.name)
}

func (v *vhost) errLocked(name string) error {
	return amqpwire.NewChannelError(amqpwire.CodeResourceLocked, 0, 0,
		"cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
		name, v.name)
}

// persistFailed is the error for a definition the store could not write: the broker cannot keep
// its promise, so the connection ends with 541.
func (v *vhost) persistFailed(err error) error {
	v.log.Error().Err(err).Msg("persisting a definition failed")
	return amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0, "failed to persist definition: %v", err)
}

// record queues a store write to run after mu is released; the caller holds defs and mu.
func (v *vhost) record(op func(*store.Store) error) {
	if v.st != nil {
		v.ops = append(v.ops, op)
	}
}

// persist runs the recorded store writes, concurrently so the group-commit writer batches them.
func (v *vhost) persist() error {
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

func (v *vhost) storeExchange(d exchange.Definition) store.Exchange {
	return store.Exchange{Vhost: v.name, Name: d.Name, Kind: d.Kind, Durable: d.Durable,
		AutoDelete: d.AutoDelete, Internal: d.Internal, Args: d.Args}
}

func (v *vhost) storeBinding(b binding.Binding) store.Binding {
	h, _ := binding.ArgsHash(b.Args) // Args were validated when the binding was made
	return store.Binding{Vhost: v.name, Source: b.Source, DestKind: uint8(b.Dest.Kind), Dest: b.Dest.Name,
		RoutingKey: b.RoutingKey, Args: b.Args, ArgsHash: h}
}

// bindingDurableLocked says whether b is persisted: both its ends are (RabbitMQ's rule).
func (v *vhost) bindingDurableLocked(b binding.Binding) bool {
	x := v.exchanges[b.Source]
	if x == nil || !x.def.Durable || v.st == nil {
		return false
	}
	if b.Dest.Kind == binding.DestExchange {
		d := v.exchanges[b.Dest.Name]
		return d != nil && d.def.Durable
	}
	q := v.queues[b.Dest.Name]
	return q != nil && q.stored
}

func (v *vhost) recordBindingDelete(b binding.Binding) {
	sb := v.storeBinding(b)
	v.record(func(st *store.Store) error { return st.DeleteBinding(sb) })
}

func errDefaultExchange() error {
	return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0, "operation not permitted on the default exchange")
}

// exchange returns the named exchange.
func (v *vhost) exchange(name string) (*exchangeRec, error) {
	v.mu.RLock()
	x := v.exchanges[name]
	v.mu.RUnlock()
	if x == nil {
		return nil, v.errNoExchange(name)
	}
	return x, nil
}

// declareExchange creates an exchange or checks a redeclare against the existing one.
func (v *vhost) declareExchange(d exchange.Definition, passive bool) error {
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
	if !exchange.KnownKind(d.Kind) {
		// RabbitMQ treats an unknown type as a hard error.
		return amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, 0, 0, "unknown exchange type '%s'", d.Kind)
	}
	r, err := exchange.NewRouter(d.Kind)
	if err != nil {
		return amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, 0, 0, "unknown exchange type '%s'", d.Kind)
	}
	if err := d.Validate(v.name); err != nil {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "%s", err.Error())
	}
	alt, _ := d.AlternateExchange()
	if d.Durable && v.st != nil {
		if err := v.st.PutExchange(v.storeExchange(d)); err != nil {
			return v.persistFailed(err)
		}
	}
	v.mu.Lock()
	xr := &exchangeRec{def: d, router: r, alternate: alt}
	v.exchangePolicy(xr)
	v.exchanges[d.Name] = xr
	v.mu.Unlock()
	return nil
}

// hasExchange reports whether the vhost has the named exchange.
func (v *vhost) hasExchange(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.exchanges[name] != nil
}

// hasQueue reports whether the vhost has the named queue.
func (v *vhost) hasQueue(name string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.queues[name] != nil
}

// checkExchangeEquivalent is the redeclare check for d, without declaring: nil when there is
// no such exchange.
func (v *vhost) checkExchangeEquivalent(d exchange.Definition) error {
	v.mu.RLock()
	x := v.exchanges[d.Name]
	v.mu.RUnlock()
	if x == nil {
		return nil
	}
	return x.def.Equivalent(v.name, d)
}

// checkQueueEquivalent is the redeclare check for d by no connection: nil when there is no
// such queue.
func (v *vhost) checkQueueEquivalent(d queueDecl) error {
	v.mu.RLock()
	q := v.queues[d.name]
	v.mu.RUnlock()
	if q == nil {
		return nil
	}
	return v.queueEquivalent(q, d)
}

// deleteExchange removes an exchange and every binding from or to it. A missing exchange is not
// an error (RabbitMQ's delete is idempotent).
func (v *vhost) deleteExchange(name string, ifUnused bool) error {
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
	if ifUnused && (x.router.Len() > 0 || v.isDestinationLocked(binding.Destination{Kind: binding.DestExchange, Name: name})) {
		v.mu.Unlock()
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "exchange '%s' in vhost '%s' in use", name, v.name)
	}
	v.removeExchangeLocked(name)
	v.mu.Unlock()
	return v.persist()
}

// removeExchangeLocked deletes an exchange with its bindings from and to it.
func (v *vhost) removeExchangeLocked(name string) {
	x := v.exchanges[name]
	for _, b := range x.router.Bindings() {
		if v.bindingDurableLocked(b) {
			v.recordBindingDelete(b)
		}
	}
	v.removeDestinationLocked(binding.Destination{Kind: binding.DestExchange, Name: name})
	delete(v.exchanges, name)
	if x.def.Durable {
		v.record(func(st *store.Store) error { return st.DeleteExchange(v.name, name) })
	}
}

// isDestinationLocked reports whether some exchange has a binding to d.
func (v *vhost) isDestinationLocked(d binding.Destination) bool {
	for _, x := range v.exchanges {
		if x.router.HasDestination(d) {
			return true
		}
	}
	return false
}

// removeDestinationLocked drops every binding to d and deletes auto-delete exchanges that lose
// their last binding that way.
func (v *vhost) removeDestinationLocked(d binding.Destination) {
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
func (v *vhost) autoDeleteExchangeLocked(name string, x *exchangeRec) {
	if x.def.AutoDelete && x.router.Len() == 0 && v.exchanges[name] == x {
		v.log.Debug().Str("exchange", name).Msg("auto-deleting exchange")
		v.removeExchangeLocked(name)
	}
}

// bind adds b. The source must exist and not be the default exchange; the destination must exist.
func (v *vhost) bind(c *conn, b binding.Binding) error {
	if b.Source == "" || (b.Dest.Kind == binding.DestExchange && b.Dest.Name == "") {
		return errDefaultExchange()
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.RLock()
	x := v.exchanges[b.Source]
	err := v.checkDestinationLocked(c, b.Dest)
	if err == nil && x == nil {
		err = v.errNoExchange(b.Source)
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

func (v *vhost) checkDestinationLocked(c *conn, d binding.Destination) error {
	if d.Kind == binding.DestExchange {
		if v.exchanges[d.Name] == nil {
			return v.errNoExchange(d.Name)
		}
		return nil
	}
	q := v.queues[d.Name]
	if q == nil {
		return v.errNoQueue(d.Name)
	}
	if q.owner != nil && q.owner != c {
		return v.errLocked(d.Name)
	}
	return nil
}

// unbind removes b; a missing binding is not an error, as in RabbitMQ.
func (v *vhost) unbind(c *conn, b binding.Binding) error {
	if b.Source == "" || (b.Dest.Kind == binding.DestExchange && b.Dest.Name == "") {
		return errDefaultExchange()
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	if b.Dest.Kind == binding.DestQueue {
		if q := v.queues[b.Dest.Name]; q != nil && q.owner != nil && q.owner != c {
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

// queueFor returns the named queue for an operation by c; exclusive queues of other
// connections are locked (405).
func (v *vhost) queueFor(c *conn, name string) (*queueRec, error) {
	v.mu.RLock()
	q := v.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return nil, v.errNoQueue(name)
	}
	if q.owner != nil && q.owner != c {
		return nil, v.errLocked(name)
	}
	q.touch()
	return q, nil
}

// queueDecl is a queue.declare after name expansion.
type queueDecl struct {
	name       string
	passive    bool
	durable    bool
	exclusive  bool
	autoDelete bool
	args       amqpwire.Table
}

// declareQueue creates a queue or checks a redeclare; it returns the queue and whether it was
// created.
func (v *vhost) declareQueue(c *conn, d queueDecl) (*queueRec, error) {
	v.defs.Lock()
	defer v.defs.Unlock()
	var qa queueArgs
	if !d.passive {
		var err error
		if qa, err = parseQueueArgs(d.name, v.name, d.args); err != nil {
			return nil, err
		}
	}
	v.mu.RLock()
	q := v.queues[d.name]
	v.mu.RUnlock()
	if q != nil {
		if q.owner != nil && q.owner != c {
			return nil, v.errLocked(d.name)
		}
		q.touch()
		if d.passive {
			return q, nil
		}
		if err := v.queueEquivalent(q, d); err != nil {
			return nil, err
		}
		return q, nil
	}
	if d.passive {
		return nil, v.errNoQueue(d.name)
	}
	q = &queueRec{
		name:       d.name,
		durable:    d.durable,
		autoDelete: d.autoDelete,
		args:       d.args,
		declared:   qa,
	}
	pol := v.policyFor(policyQueues, d.name)
	v.setEffective(q, qa.withPolicy(pol, true), pol)
	if d.exclusive {
		q.owner = c
	}
	if v.st != nil {
		q.journal = &journal{st: v.st, log: v.log}
		if d.durable && !d.exclusive {
			sq := store.Queue{Vhost: v.name, Name: d.name, AutoDelete: d.autoDelete, Args: storedArgs(d.args, qa, q.cur())}
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
	q.q = queue.New(d.name, v.queueOptions(q))
	v.mu.Lock()
	v.queues[d.name] = q
	v.mu.Unlock()
	v.armExpiry(q)
	return q, nil
}

// transientQueueID marks the store ids of queues that have no record: durable queue ids come
// from the store's sequence and never reach this bit.
const transientQueueID = 1 << 63

func (v *vhost) queueEquivalent(q *queueRec, d queueDecl) error {
	if (q.owner != nil) != d.exclusive {
		return v.errLocked(d.name)
	}
	if q.durable != d.durable {
		return inequivalent("durable", "queue", d.name, v.name, d.durable, q.durable)
	}
	if q.autoDelete != d.autoDelete {
		return inequivalent("auto_delete", "queue", d.name, v.name, d.autoDelete, q.autoDelete)
	}
	return argsEquivalent(queueArgKeys, "queue", d.name, v.name, d.args, q.args)
}

// deleteQueue removes a queue and its bindings and cancels its consumers. It returns how many
// messages were ready. A missing queue is not an error (RabbitMQ's delete is idempotent).
func (v *vhost) deleteQueue(c *conn, name string, ifUnused, ifEmpty bool) (int, error) {
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	q := v.queues[name]
	if q == nil {
		v.mu.Unlock()
		return 0, nil
	}
	if q.owner != nil && q.owner != c {
		v.mu.Unlock()
		return 0, v.errLocked(name)
	}
	st := q.q.Stats()
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
func (v *vhost) removeQueueLocked(q *queueRec) {
	if q.expiry != nil {
		q.expiry.Stop()
	}
	v.removeDestinationLocked(binding.Destination{Kind: binding.DestQueue, Name: q.name})
	delete(v.queues, q.name)
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
func (v *vhost) finishQueueDelete(q *queueRec) int {
	consumers, n := q.q.Delete()
	for _, c := range consumers {
		if cs, ok := c.(*consumer); ok {
			cs.cancelledByServer()
		}
	}
	v.log.Debug().Str("queue", q.name).Int("messages", n).Msg("queue deleted")
	return n
}

// autoDeleteQueue deletes q if it is auto-delete and has no consumers left.
func (v *vhost) autoDeleteQueue(q *queueRec) {
	if !q.autoDelete {
		return
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	v.mu.Lock()
	if v.queues[q.name] != q || q.q.Stats().Consumers > 0 {
		v.mu.Unlock()
		return
	}
	v.removeQueueLocked(q)
	v.mu.Unlock()
	v.finishQueueDelete(q)
	if err := v.persist(); err != nil {
		v.log.Error().Err(err).Str("queue", q.name).Msg("auto-delete not persisted")
	}
}

// deleteExclusiveQueues deletes the exclusive queues c declared, when c closes.
func (v *vhost) deleteExclusiveQueues(c *conn, names []string) {
	if len(names) == 0 {
		return
	}
	v.defs.Lock()
	defer v.defs.Unlock()
	for _, name := range names {
		v.mu.Lock()
		q := v.queues[name]
		if q == nil || q.owner != c {
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

// routeScratch is per-channel memory reused by route so publishing does not allocate.
type routeScratch struct {
	dests  []binding.Destination
	work   []*exchangeRec
	seen   []*exchangeRec
	queues []*queueRec
	seenQ  map[*queueRec]struct{} // used once queues outgrows a linear scan
}

// linearDedupe is how many queues a route collects before it switches from scanning its result
// to a set, so a fanout to thousands of queues stays linear.
const linearDedupe = 16

// addQueue appends q to the result unless it is already there.
func (s *routeScratch) addQueue(q *queueRec) {
	if len(s.queues) < linearDedupe {
		if !containsQueueRec(s.queues, q) {
			s.queues = append(s.queues, q)
		}
		return
	}
	if len(s.queues) == linearDedupe {
		if s.seenQ == nil {
			s.seenQ = make(map[*queueRec]struct{})
		}
		for _, x := range s.queues {
			s.seenQ[x] = struct{}{}
		}
	}
	if _, dup := s.seenQ[q]; !dup {
		s.seenQ[q] = struct{}{}
		s.queues = append(s.queues, q)
	}
}

// route returns the queues a message published to x with the given routing keys reaches,
// each once, following exchange-to-exchange bindings (with a visited set, so cycles end) and
// alternate exchanges (used when an exchange itself routes nowhere, as RabbitMQ does).
func (v *vhost) route(x *exchangeRec, keys []string, headers amqpwire.Table, s *routeScratch) []*queueRec {
	s.queues = s.queues[:0]
	clear(s.seenQ)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if x.def.Name == "" {
		// The default exchange: an implicit binding from every queue's name to the queue.
		for _, k := range keys {
			if q := v.queues[k]; q != nil {
				s.addQueue(q)
			}
		}
		return s.queues
	}
	s.work = append(s.work[:0], x)
	s.seen = append(s.seen[:0], x)
	for len(s.work) > 0 {
		cur := s.work[len(s.work)-1]
		s.work = s.work[:len(s.work)-1]
		s.dests = s.dests[:0]
		for _, k := range keys {
			s.dests = cur.router.Route(k, headers, s.dests)
		}
		if ae := cur.alternateExchange(); len(s.dests) == 0 && ae != "" {
			s.dests = append(s.dests, binding.Destination{Kind: binding.DestExchange, Name: ae})
		}
		for _, d := range s.dests {
			if d.Kind == binding.DestQueue {
				if q := v.queues[d.Name]; q != nil {
					s.addQueue(q)
				}
				continue
			}
			nx := v.exchanges[d.Name]
			if nx != nil && !containsExchange(s.seen, nx) {
				s.seen = append(s.seen, nx)
				s.work = append(s.work, nx)
			}
		}
	}
	return s.queues
}

func containsQueueRec(qs []*queueRec, q *queueRec) bool {
	for _, x := range qs {
		if x == q {
			return true
		}
	}
	return false
}

func containsExchange(xs []*exchangeRec, x *exchangeRec) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
