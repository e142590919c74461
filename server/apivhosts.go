package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/warrenmq/warren/configs"
)

// mustJSON encodes v, which holds only values decoded from JSON or built here, so encoding
// cannot fail; if it did, the result is null, which every check refuses.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

// errorReason is the messages of a definitions error without the synthetic file's positions.
func errorReason(err error) string {
	var l configs.ErrorList
	if !errors.As(err, &l) {
		return err.Error()
	}
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Msg
	}
	return strings.Join(msgs, "; ")
}

// PolicyChange is a PUT of a policy in RabbitMQ's JSON.
type PolicyChange struct {
	Pattern    string
	ApplyTo    string // "" is "all"
	Priority   int
	Definition map[string]any
}

// checkPolicy checks a policy as a definitions import does: its pattern must translate to a
// glob and its keys must be ones Warren honours.
func checkPolicy(vh, name string, p apiPolicy) (configs.Policy, error) {
	item := map[string]any{"vhost": vh, "name": name, "pattern": p.Pattern, "apply-to": p.ApplyTo,
		"priority": p.Priority, "definition": p.Definition}
	if _, err := translatePattern(p.Pattern); err != nil {
		return configs.Policy{}, err
	}
	defs, err := configs.ImportRabbitMQ("request", mustJSON(map[string]any{"policies": []any{item}}))
	if err != nil {
		return configs.Policy{}, refused("%s", errorReason(err))
	}
	if len(defs.Policies) != 1 {
		return configs.Policy{}, refused("policy %q sets nothing", name)
	}
	return defs.Policies[0], nil
}

// policyDefinitionMap is a checked policy definition as RabbitMQ's JSON keys.
func policyDefinitionMap(d configs.PolicyDefinition) map[string]any {
	m := map[string]any{}
	for k, v := range map[string]*int64{"message-ttl": d.MessageTTL, "expires": d.Expires, "max-length": d.MaxLength,
		"max-length-bytes": d.MaxLengthBytes, "delivery-limit": d.DeliveryLimit, "max-priority": d.MaxPriority,
		"consumer-timeout": d.ConsumerTimeout, "delivery-timeout": d.DeliveryTimeout} {
		if v != nil {
			m[k] = *v
		}
	}
	for k, v := range map[string]*string{"overflow": d.Overflow, "dead-letter-exchange": d.DeadLetterExchange,
		"dead-letter-routing-key": d.DeadLetterRoutingKey, "alternate-exchange": d.AlternateExchange,
		"delivery-timeout-action": d.DeliveryTimeoutAction} {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// livePolicies lists the files' policies and the API's. Callers hold applyMu.
func (s *Server) livePolicies() []PolicyInfo {
	var out []PolicyInfo
	seen := map[policyKey]bool{}
	for _, p := range s.fileDefs().Policies {
		seen[policyKey{p.Vhost, p.Name}] = true
		out = append(out, PolicyInfo{Vhost: p.Vhost, Name: p.Name, Pattern: configs.GlobToRegex(p.Pattern),
			ApplyTo: applyTo(p.ApplyTo), Priority: p.Priority, Definition: policyDefinitionMap(p.Definition), FromFiles: true})
	}
	for k, p := range s.api.policies {
		if !seen[k] {
			out = append(out, PolicyInfo{Vhost: k.vhost, Name: k.name, Pattern: p.Pattern, ApplyTo: applyTo(p.ApplyTo),
				Priority: p.Priority, Definition: p.Definition})
		}
	}
	slices.SortFunc(out, func(a, b PolicyInfo) int {
		return cmpOr(b.Priority-a.Priority, strings.Compare(a.Vhost, b.Vhost), strings.Compare(a.Name, b.Name))
	})
	return out
}

func applyTo(a string) string {
	if a == "" {
		return "all"
	}
	return a
}

// Policies lists every policy.
func (s *Server) Policies() []PolicyInfo {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.livePolicies()
}

// putPolicy creates or replaces a policy in vhost; a policy the files declare can only be
// "changed" to what it is.
func (s *Server) putPolicy(vh, name string, c PolicyChange) (created bool, err error) {
	if name == "" {
		return false, refused("policy name must not be empty")
	}
	p := apiPolicy{Pattern: c.Pattern, ApplyTo: applyTo(c.ApplyTo), Priority: c.Priority, Definition: c.Definition}
	pol, err := checkPolicy(vh, name, p)
	if err != nil {
		return false, err
	}
	p.pol = pol
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.vhost(vh) == nil {
		return false, ErrVhostNotFound
	}
	for _, fp := range s.fileDefs().Policies {
		if fp.Vhost == vh && fp.Name == name {
			fp.Pos = configs.Pos{}
			pol.Pos = configs.Pos{}
			if string(mustJSON(fp)) != string(mustJSON(pol)) {
				return false, refused("policy '%s' in vhost '%s' is declared in the definitions files; change it there and reload", name, vh)
			}
			return false, nil
		}
	}
	k := policyKey{vh, name}
	_, existed := s.api.policies[k]
	if err := s.persist(recPolicy, p, vh, name); err != nil {
		return false, err
	}
	s.api.policies[k] = p
	s.refreshPolicies(s.fileDefs(), vh)
	s.log.Info().Str("vhost", vh).Str("policy", name).Str("pattern", c.Pattern).Msg("policy set through the management API")
	return !existed, nil
}

// deletePolicy deletes a policy made through the API.
func (s *Server) deletePolicy(vh, name string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, fp := range s.fileDefs().Policies {
		if fp.Vhost == vh && fp.Name == name {
			return refused("policy '%s' in vhost '%s' is declared in the definitions files; remove it there and reload", name, vh)
		}
	}
	k := policyKey{vh, name}
	if _, ok := s.api.policies[k]; !ok {
		return ErrNotFound
	}
	if err := s.persist(recPolicy, nil, vh, name); err != nil {
		return err
	}
	delete(s.api.policies, k)
	s.refreshPolicies(s.fileDefs(), vh)
	s.log.Info().Str("vhost", vh).Str("policy", name).Msg("policy deleted through the management API")
	return nil
}

// VhostInfo returns the named vhost's metadata.
func (s *Server) VhostInfo(name string) (VhostInfo, bool) {
	if s.vhost(name) == nil {
		return VhostInfo{}, false
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.vhostInfoLocked(name), true
}

func (s *Server) vhostInfoLocked(name string) VhostInfo {
	for _, v := range s.fileDefs().Vhosts {
		if v.Name == name {
			return VhostInfo{Name: name, Description: v.Description, Tags: []string{}, FromFiles: true}
		}
	}
	info := VhostInfo{Name: name, Tags: []string{}}
	if v, ok := s.api.vhosts[name]; ok {
		info.Description = v.Description
		if v.Tags != nil {
			info.Tags = slices.Clone(v.Tags)
		}
	} else if name == "/" {
		info.Description = "Default virtual host"
	}
	return info
}

// putVhost creates a vhost, or changes the description and tags of one made through the
// API. creator, the API's user, gets every permission on a vhost it creates, as in RabbitMQ.
func (s *Server) putVhost(name, description string, tags []string, creator string) (created bool, err error) {
	if name == "" {
		return false, refused("vhost name must not be empty")
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	exists := s.vhost(name) != nil
	for _, fv := range s.fileDefs().Vhosts {
		if fv.Name == name {
			if description != "" && description != fv.Description || len(tags) > 0 {
				return false, refused("vhost '%s' is declared in the definitions files; change it there and reload", name)
			}
			return false, nil
		}
	}
	v := apiVhost{Description: description, Tags: tags}
	if err := s.persist(recVhost, v, name); err != nil {
		return false, err
	}
	s.api.vhosts[name] = v
	if !exists {
		s.vhostFor(name)
		s.refreshPolicies(s.fileDefs(), name)
		if creator != "" && s.userExistsLocked(creator) && s.access.p.Load().permissions(creator, name) == nil {
			if err := s.seedLocked(); err != nil {
				return true, err
			}
			all := apiPermission{Configure: ".*", Write: ".*", Read: ".*", globs: [3]string{"*", "*", "*"}}
			if err := s.persist(recPermission, apiPermissionJSON{".*", ".*", ".*"}, name, creator); err != nil {
				return true, err
			}
			s.api.perms[vhostUser{name, creator}] = all
			s.refreshLocked()
		}
		s.log.Info().Str("vhost", name).Str("creator", creator).Msg("vhost created through the management API")
	}
	return !exists, nil
}

// deleteVhost deletes a vhost: it closes the vhost's connections with 320 CONNECTION_FORCED
// ("vhost 'x' is deleted", RabbitMQ's text), deletes its queues (and their messages) and
// exchanges, and forgets the permissions, topic permissions and policies in it.
func (s *Server) deleteVhost(name string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	v := s.vhost(name)
	if v == nil {
		return ErrNotFound
	}
	if name == "/" {
		return refused("the default vhost '/' cannot be deleted in Warren")
	}
	for _, fv := range s.fileDefs().Vhosts {
		if fv.Name == name {
			return refused("vhost '%s' is declared in the definitions files; remove it there and reload", name)
		}
	}
	for _, fq := range s.fileDefs().Queues {
		if fq.Vhost == name {
			return refused("vhost '%s' holds objects the definitions files declare; remove them there and reload", name)
		}
	}
	if err := s.persist(recVhost, nil, name); err != nil {
		return err
	}
	delete(s.api.vhosts, name)
	for k := range s.api.perms {
		if k.vhost == name {
			if err := s.persist(recPermission, nil, k.vhost, k.user); err != nil {
				return err
			}
			delete(s.api.perms, k)
		}
	}
	for k := range s.api.topics {
		if k.vhost == name {
			if err := s.persist(recTopic, nil, k.vhost, k.user, k.exchange); err != nil {
				return err
			}
			delete(s.api.topics, k)
		}
	}
	for k := range s.api.policies {
		if k.vhost == name {
			if err := s.persist(recPolicy, nil, k.vhost, k.name); err != nil {
				return err
			}
			delete(s.api.policies, k)
		}
	}
	if err := s.dropLimitsLocked(s.api.vhostLimits, recVhostLimits, name); err != nil {
		return err
	}
	s.closeVhostConnections(name)
	s.vhosts.Remove(name)
	queues, exchanges := 0, 0
	for _, q := range v.Queues() {
		if _, err := v.DeleteQueue(nil, q.Name, false, false); err != nil {
			s.log.Warn().Err(err).Str("vhost", name).Str("queue", q.Name).Msg("deleting a vhost: a queue could not be deleted")
			continue
		}
		queues++
	}
	for _, x := range v.Exchanges() {
		if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
			continue
		}
		if err := v.DeleteExchange(x.Name, false); err != nil {
			s.log.Warn().Err(err).Str("vhost", name).Str("exchange", x.Name).Msg("deleting a vhost: an exchange could not be deleted")
			continue
		}
		exchanges++
	}
	s.refreshLocked()
	s.log.Info().Str("vhost", name).Int("queues", queues).Int("exchanges", exchanges).Msg("vhost deleted through the management API")
	return nil
}

// closeVhostConnections closes the connections to vhost with 320 CONNECTION_FORCED.
func (s *Server) closeVhostConnections(name string) {
	s.mu.Lock()
	var victims []*conn
	for c := range s.conns {
		if c.opened.Load() && c.vh.Name() == name {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.log.Warn().Str("vhost", name).Msg("closing the connection: its vhost was deleted")
		c.forceClose(fmt.Sprintf("vhost '%s' is deleted", name))
	}
}
