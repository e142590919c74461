package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/vhost"
)

// managedState is what the definitions files last applied: the objects the broker manages
// for the operator. Objects clients declared are never touched by a reload.
type managedState struct {
	defs *configs.Definitions
	// kept are queues dropped from the files that a reload kept because they held messages;
	// they stay candidates for deletion (when empty, or with prune) at every later reload.
	kept map[vhostName]bool
}

type vhostName struct{ vhost, name string }

// DefinitionsResult says what applying definitions changed.
type DefinitionsResult struct {
	Created, Deleted, Updated []string
	Kept                      []string // queues dropped from the files but kept (they hold messages)
}

// itemError is an apply-time problem with one item of the files.
func itemError(pos configs.Pos, format string, args ...any) *configs.Error {
	return &configs.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// plan is definitions checked against the live broker and ready to apply.
type plan struct {
	defs     *configs.Definitions
	access   *Access
	policies map[string][]vhost.Policy // by vhost
	queues   []plannedQueue
	xs       []exchange.Definition
	xvhosts  []string
	bindings []plannedBinding
}

type plannedQueue struct {
	vhost string
	decl  vhost.QueueDecl
}

type plannedBinding struct {
	vhost string
	b     binding.Binding
	key   string
}

// ApplyDefinitions makes the broker's file-managed topology match defs, which the caller has
// loaded and validated (configs.LoadDefinitions). Everything is checked against the live
// broker first (queue arguments, equivalence with what already exists); any problem returns
// a configs.ErrorList and changes nothing. Then the difference from the previous definitions
// is applied: vhosts, users, permissions and policies are replaced; exchanges, queues and
// bindings are created; bindings and exchanges no longer in the files are removed; queues no
// longer in the files are deleted when empty, or when defs.Prune says so.
func (s *Server) ApplyDefinitions(defs *configs.Definitions) (DefinitionsResult, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	p, err := s.plan(defs)
	if err != nil {
		return DefinitionsResult{}, err
	}
	return s.apply(p), nil
}

// CheckDefinitions runs the checks ApplyDefinitions runs before changing anything.
func (s *Server) CheckDefinitions(defs *configs.Definitions) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	_, err := s.plan(defs)
	return err
}

func (s *Server) plan(defs *configs.Definitions) (*plan, error) {
	var errs configs.ErrorList
	p := &plan{defs: defs, policies: map[string][]vhost.Policy{}}

	var accounts []Account
	loopback := map[string]bool{}
	for _, u := range s.cfg.LoopbackUsers {
		loopback[u] = true
	}
	for _, u := range defs.Users {
		accounts = append(accounts, Account{Name: u.Name, Check: u.CheckPassword, Tags: u.Tags, Loopback: loopback[u.Name]})
	}
	var grants []Grant
	for _, pm := range defs.Permissions {
		g := Grant{User: pm.User, Vhost: pm.Vhost}
		for _, pat := range []struct {
			src string
			dst **configs.Pattern
		}{{pm.Configure, &g.Configure}, {pm.Write, &g.Write}, {pm.Read, &g.Read}} {
			c, err := configs.CompilePattern(pat.src)
			if err != nil {
				errs = append(errs, itemError(pm.Pos, "%v", err))
			}
			*pat.dst = c
		}
		grants = append(grants, g)
	}
	if len(accounts) == 0 {
		p.access = DefaultAccess(s.cfg.LoopbackUsers)
	} else if a, err := NewAccess(accounts, grants); err != nil {
		errs = append(errs, itemError(configs.Pos{}, "%v", err))
	} else {
		p.access = a
	}

	for _, pol := range defs.Policies {
		pat, err := configs.CompilePattern(pol.Pattern)
		if err != nil {
			errs = append(errs, itemError(pol.Pos, "%v", err))
			continue
		}
		target := vhost.PolicyAll
		switch pol.ApplyTo {
		case "queues":
			target = vhost.PolicyQueues
		case "exchanges":
			target = vhost.PolicyExchanges
		}
		d := pol.Definition
		p.policies[pol.Vhost] = append(p.policies[pol.Vhost], vhost.Policy{Name: pol.Name, Pattern: pat, ApplyTo: target,
			Priority: pol.Priority, Def: vhost.PolicyDef{MessageTTL: d.MessageTTL, Expires: d.Expires, MaxLength: d.MaxLength,
				MaxLengthBytes: d.MaxLengthBytes, DeliveryLimit: d.DeliveryLimit, MaxPriority: d.MaxPriority,
				Overflow: d.Overflow, DeadLetterExchange: d.DeadLetterExchange,
				DeadLetterRoutingKey: d.DeadLetterRoutingKey, AlternateExchange: d.AlternateExchange}})
	}

	for _, x := range defs.Exchanges {
		args, err := amqpwire.NewTable(x.Arguments)
		if err != nil {
			errs = append(errs, itemError(x.Pos, "exchange %q in vhost %q: arguments: %v", x.Name, x.Vhost, err))
			continue
		}
		d := exchange.Definition{Name: x.Name, Kind: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Args: args}
		if err := d.Validate(x.Vhost); err != nil {
			errs = append(errs, itemError(x.Pos, "exchange %q in vhost %q: %s", x.Name, x.Vhost, replyText(err)))
			continue
		}
		if vh := s.vhost(x.Vhost); vh != nil {
			if err := vh.CheckExchangeEquivalent(d); err != nil {
				errs = append(errs, itemError(x.Pos, "exchange %q in vhost %q exists with other properties (%s); delete it or change the file",
					x.Name, x.Vhost, replyText(err)))
				continue
			}
		}
		p.xs = append(p.xs, d)
		p.xvhosts = append(p.xvhosts, x.Vhost)
	}

	for _, q := range defs.Queues {
		args, err := amqpwire.NewTable(q.Arguments)
		if err != nil {
			errs = append(errs, itemError(q.Pos, "queue %q in vhost %q: arguments: %v", q.Name, q.Vhost, err))
			continue
		}
		if err := vhost.CheckQueueArgs(q.Name, q.Vhost, args); err != nil {
			errs = append(errs, itemError(q.Pos, "%s", replyText(err)))
			continue
		}
		d := vhost.QueueDecl{Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Args: args}
		if vh := s.vhost(q.Vhost); vh != nil {
			if err := vh.CheckQueueEquivalent(d); err != nil {
				errs = append(errs, itemError(q.Pos, "queue %q in vhost %q exists with other properties (%s); delete it or change the file",
					q.Name, q.Vhost, replyText(err)))
				continue
			}
		}
		p.queues = append(p.queues, plannedQueue{vhost: q.Vhost, decl: d})
	}

	for _, b := range defs.Bindings {
		pb, err := plannedBindingOf(b)
		if err != nil {
			errs = append(errs, itemError(b.Pos, "binding from %q to %q in vhost %q: %v", b.Source, b.Destination, b.Vhost, err))
			continue
		}
		p.bindings = append(p.bindings, pb)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

func plannedBindingOf(b configs.Binding) (plannedBinding, error) {
	args, err := amqpwire.NewTable(b.Arguments)
	if err != nil {
		return plannedBinding{}, fmt.Errorf("arguments: %w", err)
	}
	kind := binding.DestQueue
	if b.DestinationType == "exchange" {
		kind = binding.DestExchange
	}
	bb := binding.Binding{Source: b.Source, Dest: binding.Destination{Kind: kind, Name: b.Destination},
		RoutingKey: b.RoutingKey, Args: args}
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

// apply carries out a checked plan. Store failures are logged: the broker keeps running with
// what it could apply, as with any declare that fails to persist.
func (s *Server) apply(p *plan) DefinitionsResult {
	var res DefinitionsResult
	old := s.managed.defs
	if old == nil {
		old = &configs.Definitions{}
	}
	logErr := func(what string, err error) {
		if err != nil {
			s.log.Error().Err(err).Str("object", what).Msg("definitions: apply failed")
		}
	}

	for _, v := range p.defs.Vhosts {
		if s.vhost(v.Name) == nil {
			s.vhostFor(v.Name)
			res.Created = append(res.Created, "vhost "+v.Name)
		}
	}
	s.vhostFor("/")
	s.SetAccess(p.access)
	s.closeRevoked(p.access)

	// Policies first, so queues created below start with them.
	vhosts := s.vhostList()
	for _, v := range vhosts {
		v.SetPolicies(p.policies[v.Name()])
	}

	for i, d := range p.xs {
		v := s.vhostFor(p.xvhosts[i])
		existed := v.HasExchange(d.Name)
		if err := v.DeclareExchange(d, false); err != nil {
			logErr("exchange "+d.Name, err)
			continue
		}
		if !existed {
			res.Created = append(res.Created, fmt.Sprintf("exchange %s in %s", d.Name, v.Name()))
		}
	}
	for _, q := range p.queues {
		v := s.vhostFor(q.vhost)
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
	for _, b := range p.bindings {
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
		if v := s.vhost(pb.vhost); v != nil {
			if err := v.Unbind(nil, pb.b); err == nil {
				res.Deleted = append(res.Deleted, "binding "+describeBinding(pb))
			}
		}
	}
	for _, b := range p.bindings {
		v := s.vhostFor(b.vhost)
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
	for _, q := range p.defs.Queues {
		keepQ[vn{q.Vhost, q.Name}] = true
	}
	dropped := s.managed.kept
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
		v := s.vhost(q.vhost)
		if v == nil || !v.HasQueue(q.name) {
			continue
		}
		_, err := v.DeleteQueue(nil, q.name, false, !p.defs.Prune)
		switch {
		case err == nil:
			res.Deleted = append(res.Deleted, fmt.Sprintf("queue %s in %s", q.name, q.vhost))
		case !p.defs.Prune:
			kept[q] = true
			res.Kept = append(res.Kept, fmt.Sprintf("queue %s in %s", q.name, q.vhost))
			s.log.Warn().Str("queue", q.name).Str("vhost", q.vhost).
				Msg("definitions: queue removed from the files still holds messages; kept (set prune: true to delete it)")
		default:
			kept[q] = true
			logErr("queue "+q.name, err)
		}
	}
	s.managed.kept = kept
	keepX := map[vn]bool{}
	for _, x := range p.defs.Exchanges {
		keepX[vn{x.Vhost, x.Name}] = true
	}
	for _, x := range old.Exchanges {
		if keepX[vn{x.Vhost, x.Name}] {
			continue
		}
		if v := s.vhost(x.Vhost); v != nil && v.HasExchange(x.Name) {
			if err := v.DeleteExchange(x.Name, false); err != nil {
				logErr("exchange "+x.Name, err)
				continue
			}
			res.Deleted = append(res.Deleted, fmt.Sprintf("exchange %s in %s", x.Name, x.Vhost))
		}
	}
	s.managed.defs = p.defs
	slices.Sort(res.Created)
	slices.Sort(res.Deleted)
	s.log.Info().Strs("created", res.Created).Strs("deleted", res.Deleted).Strs("kept", res.Kept).
		Msg("definitions applied")
	return res
}

// ExportDefinitions describes the live broker as definitions that load back to the same
// topology: every vhost, exchange, queue and binding clients or files declared (except the
// predeclared amq.* exchanges, the default exchange's implicit bindings, exclusive queues and
// server-named amq.* queues, which no file can declare), and the users, permissions and
// policies the definitions files gave.
func (s *Server) ExportDefinitions() *configs.Definitions {
	s.applyMu.Lock()
	managed := s.managed.defs
	s.applyMu.Unlock()
	out := &configs.Definitions{}
	if managed != nil {
		out.Users = slices.Clone(managed.Users)
		out.Permissions = slices.Clone(managed.Permissions)
		out.Policies = slices.Clone(managed.Policies)
		out.Prune = managed.Prune
	}
	desc := map[string]string{}
	if managed != nil {
		for _, v := range managed.Vhosts {
			desc[v.Name] = v.Description
		}
	}
	vhosts := s.vhostList()
	for _, v := range vhosts {
		if _, listed := desc[v.Name()]; v.Name() != "/" || listed {
			out.Vhosts = append(out.Vhosts, configs.Vhost{Name: v.Name(), Description: desc[v.Name()]})
		}
		v.Export(out)
	}
	for i := range out.Users {
		out.Users[i].Pos = configs.Pos{}
	}
	return out
}

func describeBinding(b plannedBinding) string {
	return fmt.Sprintf("%s -> %s %s (%q) in %s", b.b.Source, b.b.Dest.Kind, b.b.Dest.Name, b.b.RoutingKey, b.vhost)
}

// closeRevoked closes, with 320 CONNECTION_FORCED, the open connections whose user no longer
// exists or no longer has access to the connection's vhost, as RabbitMQ closes the
// connections of a deleted user.
func (s *Server) closeRevoked(a *Access) {
	s.mu.Lock()
	var revoked []*conn
	for c := range s.conns {
		// opened is stored after the handshake has set user and vh for good.
		if c.opened.Load() && a.permissions(c.user, c.vh.Name()) == nil {
			revoked = append(revoked, c)
		}
	}
	s.mu.Unlock()
	for _, c := range revoked {
		c.log.Warn().Msg("closing the connection: its user was removed or lost access to the vhost")
		c.forceClose(fmt.Sprintf("user '%s' was deleted or lost access to vhost '%s'", c.user, c.vh.Name()))
	}
}
