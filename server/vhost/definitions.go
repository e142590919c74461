package vhost

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/exchange"
)

// Topology is the model part of definitions files (policies, exchanges, queues, bindings),
// checked against the live broker by PlanTopology and carried out by ApplyTopology. Users
// and permissions are the protocol layer's (package server); parsing the files is configs'.
type Topology struct {
	defs     *configs.Definitions
	policies map[string][]Policy // by vhost
	queues   []plannedQueue
	xs       []exchange.Definition
	xvhosts  []string
	bindings []plannedBinding
}

type plannedQueue struct {
	vhost string
	decl  QueueDecl
}

type plannedBinding struct {
	vhost string
	b     binding.Binding
	key   string
}

// Managed is what the definitions files last applied: the objects the broker manages for the
// operator. Objects clients declared are never touched by a reload.
type Managed struct {
	Defs *configs.Definitions
	// kept are queues dropped from the files that a reload kept because they held messages;
	// they stay candidates for deletion (when empty, or with prune) at every later reload.
	kept map[vhostName]bool
}

type vhostName struct{ vhost, name string }

// Applied says what applying definitions changed.
type Applied struct {
	Created, Deleted, Updated []string
	Kept                      []string // queues dropped from the files but kept (they hold messages)
}

// itemError is an apply-time problem with one item of the files.
func itemError(pos configs.Pos, format string, args ...any) *configs.Error {
	return &configs.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// PlanTopology checks the topology of defs against the live broker (queue arguments,
// equivalence with what already exists) and returns it ready to apply, or the problems.
func (r *Registry) PlanTopology(defs *configs.Definitions) (*Topology, configs.ErrorList) {
	var errs configs.ErrorList
	t := &Topology{defs: defs, policies: map[string][]Policy{}}
	for _, pol := range defs.Policies {
		pat, err := configs.CompilePattern(pol.Pattern)
		if err != nil {
			errs = append(errs, itemError(pol.Pos, "%v", err))
			continue
		}
		target := PolicyAll
		switch pol.ApplyTo {
		case "queues":
			target = PolicyQueues
		case "exchanges":
			target = PolicyExchanges
		}
		d := pol.Definition
		t.policies[pol.Vhost] = append(t.policies[pol.Vhost], Policy{Name: pol.Name, Pattern: pat, ApplyTo: target,
			Priority: pol.Priority, Def: PolicyDef{MessageTTL: d.MessageTTL, Expires: d.Expires, MaxLength: d.MaxLength,
				MaxLengthBytes: d.MaxLengthBytes, DeliveryLimit: d.DeliveryLimit, MaxPriority: d.MaxPriority,
				Overflow: d.Overflow, DeadLetterExchange: d.DeadLetterExchange,
				DeadLetterRoutingKey: d.DeadLetterRoutingKey, AlternateExchange: d.AlternateExchange,
				ConsumerTimeout: d.ConsumerTimeout, DeliveryTimeout: d.DeliveryTimeout, DeliveryTimeoutAction: d.DeliveryTimeoutAction}})
	}

	for _, x := range defs.Exchanges {
		args, err := amqpwire.NewTable(x.Arguments)
		if err != nil {
			errs = append(errs, itemError(x.Pos, "exchange %q in vhost %q: arguments: %v", x.Name, x.Vhost, err))
			continue
		}
		d := exchange.Definition{Name: x.Name, Kind: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Args: args}
		if err := ValidateExchange(d, x.Vhost); err != nil {
			errs = append(errs, itemError(x.Pos, "exchange %q in vhost %q: %s", x.Name, x.Vhost, replyText(err)))
			continue
		}
		if vh := r.Get(x.Vhost); vh != nil {
			if err := vh.CheckExchangeEquivalent(d); err != nil {
				errs = append(errs, itemError(x.Pos, "exchange %q in vhost %q exists with other properties (%s); delete it or change the file",
					x.Name, x.Vhost, replyText(err)))
				continue
			}
		}
		t.xs = append(t.xs, d)
		t.xvhosts = append(t.xvhosts, x.Vhost)
	}

	for _, q := range defs.Queues {
		args, err := amqpwire.NewTable(q.Arguments)
		if err != nil {
			errs = append(errs, itemError(q.Pos, "queue %q in vhost %q: arguments: %v", q.Name, q.Vhost, err))
			continue
		}
		if _, err := parseQueueArgs(q.Name, q.Vhost, args); err != nil {
			errs = append(errs, itemError(q.Pos, "%s", replyText(err)))
			continue
		}
		d := QueueDecl{Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Args: args}
		if vh := r.Get(q.Vhost); vh != nil {
			if err := vh.CheckQueueEquivalent(d); err != nil {
				errs = append(errs, itemError(q.Pos, "queue %q in vhost %q exists with other properties (%s); delete it or change the file",
					q.Name, q.Vhost, replyText(err)))
				continue
			}
		}
		t.queues = append(t.queues, plannedQueue{vhost: q.Vhost, decl: d})
	}

	for _, b := range defs.Bindings {
		pb, err := plannedBindingOf(b)
		if err != nil {
			errs = append(errs, itemError(b.Pos, "binding from %q to %q in vhost %q: %v", b.Source, b.Destination, b.Vhost, err))
			continue
		}
		t.bindings = append(t.bindings, pb)
	}
	return t, errs
}

// BindingOf is the binding a definitions file's binding declares.
func BindingOf(b configs.Binding) (binding.Binding, error) {
	args, err := amqpwire.NewTable(b.Arguments)
	if err != nil {
		return binding.Binding{}, fmt.Errorf("arguments: %w", err)
	}
	kind := binding.DestQueue
	if b.DestinationType == "exchange" {
		kind = binding.DestExchange
	}
	return binding.Binding{Source: b.Source, Dest: binding.Destination{Kind: kind, Name: b.Destination},
		RoutingKey: b.RoutingKey, Args: args}, nil
}

func plannedBindingOf(b configs.Binding) (plannedBinding, error) {
	bb, err := BindingOf(b)
	if err != nil {
		return plannedBinding{}, err
	}
	kind, args := bb.Dest.Kind, bb.Args
	ak, err := binding.ArgsKey(args)
	if err != nil {
		return plannedBinding{}, fmt.Errorf("arguments: %w", err)
	}
	key := strings.Join([]string{b.Vhost, b.Source, kind.String(), b.Destination, b.RoutingKey, ak}, "\x00")
	return plannedBinding{vhost: b.Vhost, b: bb, key: key}, nil
}

// replyText is an AMQP error's text without the reply name ("PRECONDITION_FAILED - "), or
// the error's text.
func replyText(err error) string {
	var ce *amqpwire.ChannelError
	if errors.As(err, &ce) {
		return strings.TrimPrefix(ce.Text, amqpwire.ReplyName(ce.Code)+" - ")
	}
	return err.Error()
}

// ApplyTopology makes the file-managed topology match t, the difference from m (what the
// files applied last time) and records t in m. The vhosts must exist. Policies are replaced
// first, so queues created below start with them; exchanges, queues and bindings are
// created; bindings and exchanges no longer in the files are removed; queues no longer in the
// files are deleted when empty, or when the files say prune. Store failures are logged: the
// broker keeps running with what it could apply, as with any declare that fails to persist.
func (r *Registry) ApplyTopology(t *Topology, m *Managed, log zerolog.Logger) Applied {
	var res Applied
	old := m.Defs
	if old == nil {
		old = &configs.Definitions{}
	}
	logErr := func(what string, err error) {
		if err != nil {
			log.Error().Err(err).Str("object", what).Msg("definitions: apply failed")
		}
	}
	for _, v := range r.List() {
		v.SetPolicies(t.policies[v.name])
	}

	for i, d := range t.xs {
		v := r.Ensure(t.xvhosts[i])
		existed := v.HasExchange(d.Name)
		if err := v.DeclareExchange(d, false); err != nil {
			logErr("exchange "+d.Name, err)
			continue
		}
		if !existed {
			res.Created = append(res.Created, fmt.Sprintf("exchange %s in %s", d.Name, v.name))
		}
	}
	for _, q := range t.queues {
		v := r.Ensure(q.vhost)
		existed := v.HasQueue(q.decl.Name)
		if _, err := v.DeclareQueue(nil, q.decl); err != nil {
			logErr("queue "+q.decl.Name, err)
			continue
		}
		if !existed {
			res.Created = append(res.Created, fmt.Sprintf("queue %s in %s", q.decl.Name, q.vhost))
		}
	}

	newKeys := map[string]bool{}
	for _, b := range t.bindings {
		newKeys[b.key] = true
	}
	oldKeys := map[string]bool{}
	for _, ob := range old.Bindings {
		pb, err := plannedBindingOf(ob) // applied before, so it converts
		if err != nil {
			continue
		}
		oldKeys[pb.key] = true
		if newKeys[pb.key] {
			continue
		}
		if v := r.Get(pb.vhost); v != nil {
			if err := v.Unbind(nil, pb.b); err == nil {
				res.Deleted = append(res.Deleted, "binding "+describeBinding(pb))
			}
		}
	}
	for _, b := range t.bindings {
		v := r.Ensure(b.vhost)
		if err := v.Bind(nil, b.b); err != nil {
			logErr("binding "+describeBinding(b), err)
			continue
		}
		if !oldKeys[b.key] {
			res.Created = append(res.Created, "binding "+describeBinding(b))
		}
	}

	type vn = vhostName
	keepQ := map[vn]bool{}
	for _, q := range t.defs.Queues {
		keepQ[vn{q.Vhost, q.Name}] = true
	}
	dropped := m.kept
	if dropped == nil {
		dropped = map[vn]bool{}
	}
	for _, q := range old.Queues {
		dropped[vn{q.Vhost, q.Name}] = true
	}
	kept := map[vn]bool{}
	for q := range dropped {
		if keepQ[q] {
			continue
		}
		v := r.Get(q.vhost)
		if v == nil || !v.HasQueue(q.name) {
			continue
		}
		_, err := v.DeleteQueue(nil, q.name, false, !t.defs.Prune)
		switch {
		case err == nil:
			res.Deleted = append(res.Deleted, fmt.Sprintf("queue %s in %s", q.name, q.vhost))
		case !t.defs.Prune:
			kept[q] = true
			res.Kept = append(res.Kept, fmt.Sprintf("queue %s in %s", q.name, q.vhost))
			log.Warn().Str("queue", q.name).Str("vhost", q.vhost).
				Msg("definitions: queue removed from the files still holds messages; kept (set prune: true to delete it)")
		default:
			kept[q] = true
			logErr("queue "+q.name, err)
		}
	}
	m.kept = kept
	keepX := map[vn]bool{}
	for _, x := range t.defs.Exchanges {
		keepX[vn{x.Vhost, x.Name}] = true
	}
	for _, x := range old.Exchanges {
		if keepX[vn{x.Vhost, x.Name}] {
			continue
		}
		if v := r.Get(x.Vhost); v != nil && v.HasExchange(x.Name) {
			if err := v.DeleteExchange(x.Name, false); err != nil {
				logErr("exchange "+x.Name, err)
				continue
			}
			res.Deleted = append(res.Deleted, fmt.Sprintf("exchange %s in %s", x.Name, x.Vhost))
		}
	}
	m.Defs = t.defs
	slices.Sort(res.Created)
	slices.Sort(res.Deleted)
	return res
}

func describeBinding(b plannedBinding) string {
	return fmt.Sprintf("%s -> %s %s (%q) in %s", b.b.Source, b.b.Dest.Kind, b.b.Dest.Name, b.b.RoutingKey, b.vhost)
}
