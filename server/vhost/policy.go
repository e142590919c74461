package vhost

import (
	"cmp"
	"slices"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/queue"
)

// Policy applies settings to the queues or exchanges of a vhost whose names match Pattern,
// as RabbitMQ's policies do. Of the policies that match, the one with the highest Priority
// applies (ties go to the name that sorts first); the others do not.
type Policy struct {
	Name     string
	Pattern  *configs.Pattern
	ApplyTo  PolicyTarget
	Priority int
	Def      PolicyDef
}

// PolicyTarget says what a policy applies to.
type PolicyTarget uint8

// Policy targets, RabbitMQ's apply-to values.
const (
	PolicyAll PolicyTarget = iota
	policyQueues
	policyExchanges
)

// Policy targets for callers outside the package.
const (
	PolicyQueues    = policyQueues
	PolicyExchanges = policyExchanges
)

// PolicyDef is a policy's definition; nil fields are not set. How each combines with a
// queue's own x-argument is RabbitMQ's rule: the lower value wins for message-ttl, expires,
// max-length, max-length-bytes and delivery-limit; the argument wins for overflow,
// dead-letter-exchange and dead-letter-routing-key (and the exchange's alternate-exchange);
// max-priority applies only when a queue is created.
type PolicyDef struct {
	MessageTTL, Expires, MaxLength, MaxLengthBytes, DeliveryLimit, MaxPriority *int64
	Overflow, DeadLetterExchange, DeadLetterRoutingKey, AlternateExchange      *string
	// ConsumerTimeout and DeliveryTimeout (milliseconds) and DeliveryTimeoutAction are the
	// acknowledgement timeouts (acktimeout.go).
	ConsumerTimeout, DeliveryTimeout *int64
	DeliveryTimeoutAction            *string
}

// matches reports whether p applies to a resource of kind named name.
func (p *Policy) matches(kind PolicyTarget, name string) bool {
	return (p.ApplyTo == PolicyAll || p.ApplyTo == kind) && p.Pattern.Match(name)
}

// policyFor returns the policy that applies to the named queue or exchange, nil for none.
// v.policies is sorted by priority, highest first, then by name.
func (v *Vhost) policyFor(kind PolicyTarget, name string) *Policy {
	for _, p := range *v.policies.Load() {
		if p.matches(kind, name) {
			return p
		}
	}
	return nil
}

// withPolicy combines a queue's declared arguments with the policy p (nil for none).
// creating says the queue is being created, the only time max-priority applies.
func (qa queueArgs) withPolicy(p *Policy, creating bool) queueArgs {
	if p == nil {
		return qa.withTypeDefaults(false)
	}
	d, f := &p.Def, &qa.features
	lower := func(pol *int64, cur int, unset bool) int {
		if pol == nil {
			return cur
		}
		n := int(min(*pol, 1<<40))
		if unset || n < cur {
			return n
		}
		return cur
	}
	if d.MessageTTL != nil {
		if ttl := time.Duration(*d.MessageTTL) * time.Millisecond; !f.HasTTL || ttl < f.MessageTTL {
			f.HasTTL, f.MessageTTL = true, ttl
		}
	}
	if d.Expires != nil {
		if e := time.Duration(*d.Expires) * time.Millisecond; qa.expires == 0 || e < qa.expires {
			qa.expires = e
		}
	}
	f.MaxLength = lower(d.MaxLength, f.MaxLength, f.MaxLength < 0)
	f.MaxBytes = lower(d.MaxLengthBytes, f.MaxBytes, f.MaxBytes < 0)
	f.DeliveryLimit = lower(d.DeliveryLimit, f.DeliveryLimit, f.DeliveryLimit < 0)
	if d.Overflow != nil && !qa.overflowSet {
		switch *d.Overflow {
		case "reject-publish":
			f.Overflow = queue.RejectPublish
		case "reject-publish-dlx":
			f.Overflow = queue.RejectPublishDLX
		default:
			f.Overflow = queue.DropHead
		}
	}
	if d.DeadLetterExchange != nil && !qa.dlxSet {
		qa.dlx, qa.dlxSet = *d.DeadLetterExchange, true
	}
	if d.DeadLetterRoutingKey != nil && !qa.dlrkSet && qa.dlxSet {
		qa.dlrk, qa.dlrkSet = *d.DeadLetterRoutingKey, true
	}
	qa.ack = qa.ack.withPolicy(d)
	if creating && d.MaxPriority != nil && f.MaxPriority == 0 && !qa.quorum {
		f.MaxPriority = uint8(min(*d.MaxPriority, 255))
	}
	return qa.withTypeDefaults(d.DeliveryLimit != nil)
}

// setEffective installs a queue's effective arguments and the name of the policy in them.
func (v *Vhost) setEffective(q *Queue, qa queueArgs, p *Policy) {
	q.policy = ""
	if p != nil {
		q.policy = p.Name
	}
	q.eff.Store(&qa)
}

// SetPolicies replaces the policies of the vhost and applies them to every queue and
// exchange at once: limits that fall drop the oldest ready messages now, a TTL applies to
// messages published from now on, x-expires timers restart.
func (v *Vhost) SetPolicies(ps []Policy) {
	sorted := make([]*Policy, len(ps))
	for i := range ps {
		sorted[i] = &ps[i]
	}
	slices.SortStableFunc(sorted, func(a, b *Policy) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	v.defs.Lock()
	defer v.defs.Unlock()
	v.policies.Store(&sorted)

	v.mu.Lock()
	for _, x := range v.exchanges {
		v.exchangePolicy(x)
	}
	queues := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		queues = append(queues, q)
	}
	v.mu.Unlock()
	for _, q := range queues {
		v.applyPolicy(q)
	}
}

// exchangePolicy sets the alternate exchange the policy for x gives. Called with Vhost.mu
// held, or before x is in the map.
func (v *Vhost) exchangePolicy(x *Exchange) {
	x.policyAE, x.policy = "", ""
	if p := v.policyFor(policyExchanges, x.def.Name); p != nil {
		x.policy = p.Name
		if p.Def.AlternateExchange != nil {
			x.policyAE = *p.Def.AlternateExchange
		}
	}
}

// applyPolicy recomputes one queue's effective arguments after a policy change.
func (v *Vhost) applyPolicy(q *Queue) {
	p := v.policyFor(policyQueues, q.name)
	name := ""
	if p != nil {
		name = p.Name
	}
	old := q.cur()
	qa := q.declared.withPolicy(p, false)
	qa.features.MaxPriority = old.features.MaxPriority // levels are fixed at creation
	if name == q.policy && qa == *old {
		return
	}
	v.setEffective(q, qa, p)
	q.Core().Reconfigure(qa.features)
	switch {
	case qa.expires == old.expires:
	case q.expiry == nil:
		v.armExpiry(q)
	default:
		q.touch()
		q.expiry.Reset(0) // checkExpiry works out the new deadline
	}
	v.log.Info().Str("queue", q.name).Str("policy", name).Msg("policy applied")
}

// policyPriorityKey records, in a stored queue's arguments, the priority levels a policy gave
// the queue when it was created: they must survive a restart even if the policy has changed,
// or the messages on the higher levels would be lost. Redeclare equivalence ignores the key
// (it is not in queueArgKeys) and export leaves it out.
const policyPriorityKey = "x-warren-policy-max-priority"

// storedArgs are the arguments to persist for a new queue.
func storedArgs(args amqpwire.Table, declared queueArgs, eff *queueArgs) amqpwire.Table {
	if eff.features.MaxPriority == declared.features.MaxPriority {
		return args
	}
	out, err := amqpwire.AppendField(args, policyPriorityKey, int64(eff.features.MaxPriority))
	if err != nil {
		return args
	}
	return out
}

// restoredPriority is the max priority a stored queue had: its argument's, or the one a policy
// gave it when it was created.
func restoredPriority(args amqpwire.Table, declared queueArgs) uint8 {
	if n, ok := asIntArg(args, policyPriorityKey); ok && declared.features.MaxPriority == 0 {
		return uint8(min(max(n, 0), 255))
	}
	return declared.features.MaxPriority
}

func asIntArg(args amqpwire.Table, key string) (int64, bool) {
	v, ok, err := args.Get(key)
	if err != nil || !ok {
		return 0, false
	}
	return asInt(v)
}
