package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/vhost"
)

// DefinitionsResult says what applying definitions changed.
type DefinitionsResult = vhost.Applied

// itemError is an apply-time problem with one item of the files.
func itemError(pos configs.Pos, format string, args ...any) *configs.Error {
	return &configs.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// plan is definitions checked against the live broker and ready to apply: the access they
// give, and their topology (the model's part, vhost.Topology).
type plan struct {
	defs     *configs.Definitions
	access   *Access
	topology *vhost.Topology
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
	p := &plan{defs: defs}

	accounts, grants, aerrs := s.fileAccess(defs)
	errs = append(errs, aerrs...)
	// A grant in the files for a user neither the files nor the API have is an error.
	users := map[string]bool{}
	for _, a := range accounts {
		users[a.Name] = true
	}
	for _, g := range grants {
		if _, api := s.api.users[g.User]; len(accounts) > 0 && !users[g.User] && !api {
			errs = append(errs, itemError(configs.Pos{}, "permission for unknown user %q", g.User))
		}
	}
	if len(errs) == 0 {
		p.access = s.buildAccess(defs, accounts, grants)
	}

	topology, terrs := s.vhosts.PlanTopology(defs)
	errs = append(errs, terrs...)
	p.topology = topology
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// apply carries out a checked plan: vhosts, then access, then the topology.
func (s *Server) apply(p *plan) DefinitionsResult {
	var created []string
	for _, v := range p.defs.Vhosts {
		if s.vhost(v.Name) == nil {
			s.vhostFor(v.Name)
			created = append(created, "vhost "+v.Name)
		}
	}
	s.vhostFor("/")
	s.takeOver(p.defs)
	s.SetAccess(p.access)
	s.closeRevoked(p.access)
	for vh, ps := range s.apiPolicies(p.defs) { // the API's policies are set with the files'
		p.topology.AddPolicies(vh, ps)
	}
	res := s.vhosts.ApplyTopology(p.topology, &s.managed, s.log)
	if len(created) > 0 {
		res.Created = append(res.Created, created...)
		slices.Sort(res.Created)
	}
	s.log.Info().Strs("created", res.Created).Strs("deleted", res.Deleted).Strs("kept", res.Kept).
		Msg("definitions applied")
	return res
}

// ExportDefinitions describes the live broker as definitions that load back to the same
// topology: every vhost, exchange, queue and binding clients or files declared (except the
// predeclared amq.* exchanges, the default exchange's implicit bindings, exclusive queues and
// server-named amq.* queues, which no file can declare), and the vhosts, users, permissions
// and policies the definitions files gave and the management API made.
func (s *Server) ExportDefinitions() *configs.Definitions {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	managed := s.managed.Defs
	out := &configs.Definitions{}
	if managed != nil {
		out.Users = slices.Clone(managed.Users)
		out.Permissions = slices.Clone(managed.Permissions)
		out.TopicPermissions = slices.Clone(managed.TopicPermissions)
		out.Policies = slices.Clone(managed.Policies)
		out.Prune = managed.Prune
	}
	desc := map[string]string{}
	if managed != nil {
		for _, v := range managed.Vhosts {
			desc[v.Name] = v.Description
		}
	}
	for name, v := range s.api.vhosts {
		if _, files := desc[name]; !files {
			desc[name] = v.Description
		}
	}
	limits := map[string]configs.VhostLimits{}
	for _, l := range s.liveVhostLimits(s.fileDefs()) {
		limits[l.Name] = configVhostLimits(l.Values)
	}
	vhosts := s.vhostList()
	slices.SortFunc(vhosts, func(a, b *vhost.Vhost) int { return strings.Compare(a.Name(), b.Name()) })
	for _, v := range vhosts {
		_, listed := desc[v.Name()]
		l, limited := limits[v.Name()]
		if v.Name() != "/" || listed || limited {
			out.Vhosts = append(out.Vhosts, configs.Vhost{Name: v.Name(), Description: desc[v.Name()], Limits: l})
		}
		v.Export(out)
	}
	s.apiExport(out)
	for i := range out.Users {
		out.Users[i].Pos = configs.Pos{}
	}
	for i := range out.Permissions {
		out.Permissions[i].Pos = configs.Pos{}
	}
	for i := range out.Policies {
		out.Policies[i].Pos = configs.Pos{}
	}
	for i := range out.TopicPermissions {
		out.TopicPermissions[i].Pos = configs.Pos{}
	}
	return out
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
