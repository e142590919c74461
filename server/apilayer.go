package server

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/vhost"
	"github.com/warrenmq/warren/store"
)

// The API layer is the vhosts, users, permissions, topic permissions and policies made
// through the management API. They live next to the definitions files' (s.managed): the live
// set is the files' objects plus the API's. An object the files declare belongs to the files:
// the API refuses to change or delete it unless the change leaves it as it is (so a
// definitions export imports back), and when a reload makes the files declare an object the
// API made, the files take it over. Each change is written to the store before the API
// answers, and Recover loads the layer back.

// Record kinds of the API layer in the store.
const (
	recVhost      = 'v'
	recUser       = 'u'
	recPermission = 'p'
	recTopic      = 't'
	recPolicy     = 'P'
	recSeeded     = 's' // the default user was copied into the layer (see seedDefault)
)

// apiUser is a user made through the API.
type apiUser struct {
	PasswordHash     string   `json:"password_hash"`
	HashingAlgorithm string   `json:"hashing_algorithm"`
	Tags             []string `json:"tags"`
}

// apiPermission is a permission made through the API: the regular expressions as given, and
// the globs Warren matches with.
type apiPermission struct {
	Configure, Write, Read string // RabbitMQ's regular expressions, as given
	globs                  [3]string
}

type apiPermissionJSON struct {
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// apiTopic is a topic permission: the routing keys a user may publish to (write) and bind
// from (read) on one topic exchange.
type apiTopic struct {
	Write string `json:"write"`
	Read  string `json:"read"`
}

// apiVhost is a vhost made through the API.
type apiVhost struct {
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
}

// apiPolicy is a policy made through the API: RabbitMQ's JSON as given, and the checked
// policy it stands for.
type apiPolicy struct {
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Priority   int            `json:"priority"`
	Definition map[string]any `json:"definition"`
	pol        configs.Policy
}

type userKey = string
type vhostUser struct{ vhost, user string }
type topicKey struct{ vhost, user, exchange string }
type policyKey struct{ vhost, name string }

// apiLayer is the API's objects. Guarded by Server.applyMu.
type apiLayer struct {
	seeded      bool
	defaultUser apiUser // the default user's hash for listings (defaultHash)
	vhosts      map[string]apiVhost
	users       map[userKey]apiUser
	perms       map[vhostUser]apiPermission
	topics      map[topicKey]apiTopic
	policies    map[policyKey]apiPolicy
	// vhostLimits and userLimits are limits by vhost and by user (accesslimits.go).
	vhostLimits map[string]map[string]int64
	userLimits  map[string]map[string]int64
}

func newAPILayer() *apiLayer {
	return &apiLayer{vhosts: map[string]apiVhost{}, users: map[userKey]apiUser{}, perms: map[vhostUser]apiPermission{},
		topics: map[topicKey]apiTopic{}, policies: map[policyKey]apiPolicy{},
		vhostLimits: map[string]map[string]int64{}, userLimits: map[string]map[string]int64{}}
}

// persist writes one record of the layer (val nil deletes it); without a store it does nothing.
func (s *Server) persist(kind byte, val any, key ...string) error {
	st := s.cfg.Store
	if st == nil {
		return nil
	}
	if val == nil {
		if err := st.DeleteAccess(kind, key...); err != nil {
			return fmt.Errorf("deleting %c record %q: %w", kind, key, err)
		}
		return nil
	}
	b, err := json.Marshal(val)
	if err != nil {
		return fmt.Errorf("encoding %c record %q: %w", kind, key, err)
	}
	if err := st.PutAccess(store.AccessRecord{Kind: kind, Key: key, Val: b}); err != nil {
		return fmt.Errorf("storing %c record %q: %w", kind, key, err)
	}
	return nil
}

// recoverAPILayer loads the API layer from the store and makes it live. Records that no
// longer make sense (a pattern this version refuses) are logged and skipped.
func (s *Server) recoverAPILayer() error {
	st := s.cfg.Store
	if st == nil {
		return nil
	}
	recs, err := st.AccessRecords()
	if err != nil {
		return fmt.Errorf("recover access records: %w", err)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	l := s.api
	for _, r := range recs {
		bad := func(err error) {
			s.log.Error().Err(err).Str("kind", string(rune(r.Kind))).Strs("key", r.Key).Msg("skipping an unreadable access record")
		}
		switch {
		case r.Kind == recSeeded:
			l.seeded = true
		case r.Kind == recVhost && len(r.Key) == 1:
			var v apiVhost
			if err := json.Unmarshal(r.Val, &v); err != nil {
				bad(err)
				continue
			}
			l.vhosts[r.Key[0]] = v
			s.vhostFor(r.Key[0])
		case r.Kind == recUser && len(r.Key) == 1:
			var u apiUser
			if err := json.Unmarshal(r.Val, &u); err != nil {
				bad(err)
				continue
			}
			l.users[r.Key[0]] = u
		case r.Kind == recPermission && len(r.Key) == 2:
			var pj apiPermissionJSON
			if err := json.Unmarshal(r.Val, &pj); err != nil {
				bad(err)
				continue
			}
			p, err := newAPIPermission(pj)
			if err != nil {
				bad(err)
				continue
			}
			l.perms[vhostUser{r.Key[0], r.Key[1]}] = p
		case r.Kind == recTopic && len(r.Key) == 3:
			var t apiTopic
			if err := json.Unmarshal(r.Val, &t); err != nil {
				bad(err)
				continue
			}
			l.topics[topicKey{r.Key[0], r.Key[1], r.Key[2]}] = t
		case (r.Kind == recVhostLimits || r.Kind == recUserLimits) && len(r.Key) == 1:
			var m map[string]int64
			if err := json.Unmarshal(r.Val, &m); err != nil {
				bad(err)
				continue
			}
			if r.Kind == recVhostLimits {
				l.vhostLimits[r.Key[0]] = m
			} else {
				l.userLimits[r.Key[0]] = m
			}
		case r.Kind == recPolicy && len(r.Key) == 2:
			var p apiPolicy
			if err := json.Unmarshal(r.Val, &p); err != nil {
				bad(err)
				continue
			}
			pol, err := checkPolicy(r.Key[0], r.Key[1], p)
			if err != nil {
				bad(err)
				continue
			}
			p.pol = pol
			l.policies[policyKey{r.Key[0], r.Key[1]}] = p
		default:
			bad(fmt.Errorf("unknown record"))
		}
	}
	s.log.Info().Int("vhosts", len(l.vhosts)).Int("users", len(l.users)).Int("permissions", len(l.perms)).
		Int("topic_permissions", len(l.topics)).Int("policies", len(l.policies)).
		Int("vhost_limits", len(l.vhostLimits)).Int("user_limits", len(l.userLimits)).Msg("recovered the objects made through the management API")
	s.refreshLocked()
	s.refreshPolicies(s.fileDefs())
	return nil
}

// newAPIPermission checks a permission's regular expressions and translates them to globs.
func newAPIPermission(pj apiPermissionJSON) (apiPermission, error) {
	p := apiPermission{Configure: pj.Configure, Write: pj.Write, Read: pj.Read}
	for i, re := range []string{pj.Configure, pj.Write, pj.Read} {
		g, err := translatePattern(re)
		if err != nil {
			return apiPermission{}, err
		}
		p.globs[i] = g
	}
	return p, nil
}

// fileDefs is what the definitions files last applied (never nil). Callers hold applyMu.
func (s *Server) fileDefs() *configs.Definitions {
	if s.managed.Defs == nil {
		return &configs.Definitions{}
	}
	return s.managed.Defs
}

// defaultActive says whether the default user (guest) is live: neither the files nor the API
// has defined users yet. Callers hold applyMu.
func (s *Server) defaultActive(files *configs.Definitions) bool {
	return len(files.Users) == 0 && !s.api.seeded
}

// buildAccess is the access of the files' users and permissions plus the API's. Callers
// hold applyMu.
func (s *Server) buildAccess(files *configs.Definitions, fileAccounts []Account, fileGrants []Grant) *Access {
	if s.defaultActive(files) && len(s.api.users) == 0 {
		a := DefaultAccess(s.cfg.LoopbackUsers)
		a.setTopics(s.topicGrants(files))
		s.setLimits(a, files)
		return a
	}
	loopback := map[string]bool{}
	for _, u := range s.cfg.LoopbackUsers {
		loopback[u] = true
	}
	accounts := slices.Clone(fileAccounts)
	have := map[string]bool{}
	for _, a := range accounts {
		have[a.Name] = true
	}
	for name, u := range s.api.users {
		if have[name] {
			continue
		}
		cu := configs.User{Name: name, PasswordHash: u.PasswordHash, HashingAlgorithm: u.HashingAlgorithm}
		accounts = append(accounts, Account{Name: name, Check: cu.CheckPassword, Tags: slices.Clone(u.Tags), Loopback: loopback[name]})
		have[name] = true
	}
	var grants []Grant
	fromFiles := map[vhostUser]bool{}
	for _, g := range fileGrants {
		fromFiles[vhostUser{g.Vhost, g.User}] = true
		if have[g.User] {
			grants = append(grants, g)
		}
	}
	for k, p := range s.api.perms {
		if fromFiles[k] || !have[k.user] {
			continue
		}
		g := Grant{User: k.user, Vhost: k.vhost}
		g.Configure, _ = configs.CompilePattern(p.globs[0]) // checked when made
		g.Write, _ = configs.CompilePattern(p.globs[1])
		g.Read, _ = configs.CompilePattern(p.globs[2])
		grants = append(grants, g)
	}
	a, err := NewAccess(accounts, grants)
	if err != nil { // cannot happen: grants of unknown users are left out above
		s.log.Error().Err(err).Msg("building the access snapshot")
		return DefaultAccess(s.cfg.LoopbackUsers)
	}
	a.setTopics(s.topicGrants(files))
	s.setLimits(a, files)
	return a
}

// topicGrants are the topic permissions of the files and the API; the files' win where both
// name the same user, vhost and exchange. Callers hold applyMu.
func (s *Server) topicGrants(files *configs.Definitions) []TopicGrant {
	var out []TopicGrant
	fromFiles := map[topicKey]bool{}
	for _, t := range files.TopicPermissions {
		fromFiles[topicKey{t.Vhost, t.User, t.Exchange}] = true
		out = append(out, TopicGrant{User: t.User, Vhost: t.Vhost, Exchange: t.Exchange, Write: t.Write, Read: t.Read})
	}
	for k, t := range s.api.topics {
		if !fromFiles[k] {
			out = append(out, TopicGrant{User: k.user, Vhost: k.vhost, Exchange: k.exchange, Write: t.Write, Read: t.Read})
		}
	}
	return out
}

// fileAccess is the accounts and grants of the files' users and permissions.
func (s *Server) fileAccess(defs *configs.Definitions) ([]Account, []Grant, configs.ErrorList) {
	var errs configs.ErrorList
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
	return accounts, grants, errs
}

// refreshLocked makes the live access the files' plus the API's, and closes the connections
// of users who lost access. Callers hold applyMu.
func (s *Server) refreshLocked() {
	files := s.fileDefs()
	accounts, grants, _ := s.fileAccess(files) // applied before, so they compile
	a := s.buildAccess(files, accounts, grants)
	s.SetAccess(a)
	s.closeRevoked(a)
}

// refreshPolicies gives the named vhosts (every vhost when none is named) the files' policies
// plus the API's. Queues whose effective policy does not change are not touched.
func (s *Server) refreshPolicies(files *configs.Definitions, only ...string) {
	byVhost := s.apiPolicies(files)
	for _, p := range files.Policies {
		if vp, err := vhostPolicy(p); err == nil {
			byVhost[p.Vhost] = append(byVhost[p.Vhost], vp)
		}
	}
	for _, v := range s.vhostList() {
		if len(only) == 0 || slices.Contains(only, v.Name()) {
			v.SetPolicies(byVhost[v.Name()])
		}
	}
}

// apiPolicies are the API's policies the files do not shadow, by vhost. Callers hold applyMu.
func (s *Server) apiPolicies(files *configs.Definitions) map[string][]vhost.Policy {
	fromFiles := map[policyKey]bool{}
	for _, p := range files.Policies {
		fromFiles[policyKey{p.Vhost, p.Name}] = true
	}
	byVhost := map[string][]vhost.Policy{}
	for k, p := range s.api.policies {
		if fromFiles[k] {
			continue
		}
		if vp, err := vhostPolicy(p.pol); err == nil {
			byVhost[k.vhost] = append(byVhost[k.vhost], vp)
		}
	}
	return byVhost
}

// vhostPolicy is the model's form of a checked policy.
func vhostPolicy(pol configs.Policy) (vhost.Policy, error) {
	pat, err := configs.CompilePattern(pol.Pattern)
	if err != nil {
		return vhost.Policy{}, fmt.Errorf("policy %q: %w", pol.Name, err)
	}
	target := vhost.PolicyAll
	switch pol.ApplyTo {
	case "queues":
		target = vhost.PolicyQueues
	case "exchanges":
		target = vhost.PolicyExchanges
	}
	d := pol.Definition
	return vhost.Policy{Name: pol.Name, Pattern: pat, ApplyTo: target, Priority: pol.Priority,
		Def: vhost.PolicyDef{MessageTTL: d.MessageTTL, Expires: d.Expires, MaxLength: d.MaxLength,
			MaxLengthBytes: d.MaxLengthBytes, DeliveryLimit: d.DeliveryLimit, MaxPriority: d.MaxPriority,
			Overflow: d.Overflow, DeadLetterExchange: d.DeadLetterExchange,
			DeadLetterRoutingKey: d.DeadLetterRoutingKey, AlternateExchange: d.AlternateExchange,
			ConsumerTimeout: d.ConsumerTimeout, DeliveryTimeout: d.DeliveryTimeout, DeliveryTimeoutAction: d.DeliveryTimeoutAction}}, nil
}

// takeOver drops from the API layer (and the store) the objects the files now declare: the
// files own them from this reload on. Callers hold applyMu.
func (s *Server) takeOver(defs *configs.Definitions) {
	drop := func(what string, kind byte, key ...string) {
		s.log.Warn().Str("object", what).Strs("key", key).
			Msg("definitions: the files now declare an object made through the management API; the files' version applies from now on")
		if err := s.persist(kind, nil, key...); err != nil {
			s.log.Error().Err(err).Msg("definitions: dropping the API's copy")
		}
	}
	for _, v := range defs.Vhosts {
		if _, ok := s.api.vhosts[v.Name]; ok {
			delete(s.api.vhosts, v.Name)
			drop("vhost", recVhost, v.Name)
		}
	}
	for _, u := range defs.Users {
		if _, ok := s.api.users[u.Name]; ok {
			delete(s.api.users, u.Name)
			drop("user", recUser, u.Name)
		}
		if _, ok := s.api.userLimits[u.Name]; ok {
			delete(s.api.userLimits, u.Name)
			drop("user limits", recUserLimits, u.Name)
		}
	}
	for _, v := range defs.Vhosts {
		if _, ok := s.api.vhostLimits[v.Name]; ok {
			delete(s.api.vhostLimits, v.Name)
			drop("vhost limits", recVhostLimits, v.Name)
		}
	}
	for _, p := range defs.Permissions {
		k := vhostUser{p.Vhost, p.User}
		if _, ok := s.api.perms[k]; ok {
			delete(s.api.perms, k)
			drop("permission", recPermission, k.vhost, k.user)
		}
	}
	for _, t := range defs.TopicPermissions {
		k := topicKey{t.Vhost, t.User, t.Exchange}
		if _, ok := s.api.topics[k]; ok {
			delete(s.api.topics, k)
			drop("topic permission", recTopic, k.vhost, k.user, k.exchange)
		}
	}
	for _, p := range defs.Policies {
		k := policyKey{p.Vhost, p.Name}
		if _, ok := s.api.policies[k]; ok {
			delete(s.api.policies, k)
			drop("policy", recPolicy, k.vhost, k.name)
		}
	}
}
