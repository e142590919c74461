package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/vhost"
)

// apiExport adds the API layer's users, permissions, topic permissions and policies to out, an export of the
// files' objects, every vhost and the live topology. The default user, while it is live, is
// not exported (as before the API existed): it is not in the layer. Callers hold applyMu.
func (s *Server) apiExport(out *configs.Definitions) {
	files := s.fileDefs()
	users := s.api.users
	perms := s.api.perms
	for _, u := range s.liveUsers() {
		if au, api := users[u.Name]; !u.FromFiles && api {
			out.Users = append(out.Users, configs.User{Name: u.Name, PasswordHash: au.PasswordHash,
				HashingAlgorithm: algorithmName(au.HashingAlgorithm), Tags: slices.Clone(au.Tags),
				Limits: configUserLimits(s.api.userLimits[u.Name])})
		}
	}
	fromFiles := map[vhostUser]bool{}
	for _, p := range files.Permissions {
		fromFiles[vhostUser{p.Vhost, p.User}] = true
	}
	for k, p := range perms {
		if !fromFiles[k] {
			out.Permissions = append(out.Permissions, configs.Permission{User: k.user, Vhost: k.vhost,
				Configure: p.globs[0], Write: p.globs[1], Read: p.globs[2]})
		}
	}
	for k, t := range s.api.topics {
		if _, files := s.fileTopic(k.vhost, k.user, k.exchange); !files {
			out.TopicPermissions = append(out.TopicPermissions, configs.TopicPermission{User: k.user, Vhost: k.vhost,
				Exchange: k.exchange, Write: t.Write, Read: t.Read})
		}
	}
	filePol := map[policyKey]bool{}
	for _, p := range files.Policies {
		filePol[policyKey{p.Vhost, p.Name}] = true
	}
	for k, p := range s.api.policies {
		if !filePol[k] {
			pol := p.pol
			pol.Pos = configs.Pos{}
			out.Policies = append(out.Policies, pol)
		}
	}
}

// importDoc is the part of RabbitMQ's definitions.json that the API layer takes.
type importDoc struct {
	Users []struct {
		Name             string          `json:"name"`
		PasswordHash     *string         `json:"password_hash"`
		Password         *string         `json:"password"`
		HashingAlgorithm string          `json:"hashing_algorithm"`
		Tags             json.RawMessage `json:"tags"`
		Limits           map[string]any  `json:"limits"`
	} `json:"users"`
	Vhosts []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Metadata    struct {
			Description string   `json:"description"`
			Tags        []string `json:"tags"`
		} `json:"metadata"`
	} `json:"vhosts"`
	Permissions []struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	} `json:"permissions"`
	TopicPermissions []struct {
		User     string `json:"user"`
		Vhost    string `json:"vhost"`
		Exchange string `json:"exchange"`
		Write    string `json:"write"`
		Read     string `json:"read"`
	} `json:"topic_permissions"`
	Policies []struct {
		Vhost      string         `json:"vhost"`
		Name       string         `json:"name"`
		Pattern    string         `json:"pattern"`
		ApplyTo    string         `json:"apply-to"`
		Priority   int            `json:"priority"`
		Definition map[string]any `json:"definition"`
	} `json:"policies"`
	Parameters       []json.RawMessage `json:"parameters"`
	GlobalParameters []json.RawMessage `json:"global_parameters"`
	Queues           []json.RawMessage `json:"queues"`
	Exchanges        []json.RawMessage `json:"exchanges"`
	Bindings         []json.RawMessage `json:"bindings"`
}

// ParseTags reads RabbitMQ's user tags: a comma-separated string or a list of strings.
func ParseTags(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return []string{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		out := []string{}
		for _, t := range strings.Split(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
		return out, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, refused("tags must be a comma-separated string or a list of strings")
	}
	if l == nil {
		l = []string{}
	}
	return l, nil
}

// importDefinitions merges RabbitMQ's definitions JSON into the broker, as POST
// /api/definitions does: users, vhosts, permissions, topic permissions and policies go to the
// API layer (overwriting the API's own); exchanges, queues and bindings are declared, those
// that exist are left as they are. vhost, when not "", is the vhost of every item (POST
// /api/definitions/{vhost}, which takes only the topology and policies). Everything is
// checked before anything changes; runtime parameters are refused. user, the API's user,
// gets every permission on the vhosts the import creates, as in RabbitMQ.
func (s *Server) importDefinitions(data []byte, vh, user string) error {
	p, err := s.planImport(data, vh)
	if err != nil {
		return err
	}
	return s.applyImport(p, user)
}

// importPlan is a definitions document checked against the live broker, ready to apply.
type importPlan struct {
	doc     importDoc
	vlimits []importedLimits
	tags    [][]string
	ulimits []map[string]int64
	topo    *configs.Definitions // the exchanges, queues and bindings
}

// planImport checks a definitions document (importDefinitions) and changes nothing.
func (s *Server) planImport(data []byte, vh string) (*importPlan, error) {
	var doc importDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, refused("failed_to_parse_json")
	}
	vlimits, err := importVhostLimits(doc.Parameters)
	if err != nil {
		return nil, err
	}
	if vh != "" {
		doc.Users, doc.Vhosts, doc.Permissions, doc.TopicPermissions = nil, nil, nil, nil
		for i := range doc.Policies {
			doc.Policies[i].Vhost = vh
		}
	}
	// The topology: checked by the definitions importer, then against the live broker.
	var topo map[string]json.RawMessage
	if err := json.Unmarshal(data, &topo); err != nil {
		return nil, refused("failed_to_parse_json")
	}
	topoDoc := map[string]any{}
	for _, k := range []string{"queues", "exchanges", "bindings"} {
		var items []map[string]any
		if raw, ok := topo[k]; ok && json.Unmarshal(raw, &items) == nil {
			if vh != "" {
				for _, it := range items {
					it["vhost"] = vh
				}
			}
			topoDoc[k] = items
		}
	}
	tdefs, err := configs.ImportRabbitMQ("definitions", mustJSON(topoDoc))
	if err != nil {
		return nil, refused("%s", errorReason(err))
	}
	// Check the access objects before changing anything.
	tags := make([][]string, len(doc.Users))
	for i, u := range doc.Users {
		if tags[i], err = ParseTags(u.Tags); err != nil {
			return nil, err
		}
		if u.Name == "" {
			return nil, refused("a user has no name")
		}
	}
	ulimits := make([]map[string]int64, len(doc.Users))
	for i, u := range doc.Users {
		if ulimits[i], err = importLimits(u.Limits, UserLimitNames, "user-limits"); err != nil {
			return nil, refused("user '%s': %s", u.Name, errorReason(err))
		}
	}
	for _, u := range doc.Users {
		if u.PasswordHash != nil && *u.PasswordHash != "" {
			alg := algorithmName(u.HashingAlgorithm)
			item := map[string]any{"name": u.Name, "password_hash": *u.PasswordHash, "hashing_algorithm": alg}
			if _, err := configs.ImportRabbitMQ("definitions", mustJSON(map[string]any{"users": []any{item}})); err != nil {
				return nil, refused("user '%s': %s", u.Name, errorReason(err))
			}
		}
	}
	for _, p := range doc.Permissions {
		if _, err := newAPIPermission(apiPermissionJSON{p.Configure, p.Write, p.Read}); err != nil {
			return nil, err
		}
	}
	if err := s.checkImportRefs(&doc, tdefs); err != nil {
		return nil, err
	}
	for _, p := range doc.Policies {
		if _, err := checkPolicy(p.Vhost, p.Name, apiPolicy{Pattern: p.Pattern, ApplyTo: applyTo(p.ApplyTo), Priority: p.Priority, Definition: p.Definition}); err != nil {
			return nil, err
		}
	}
	if vh != "" && s.vhost(vh) == nil {
		return nil, ErrVhostNotFound
	}
	return &importPlan{doc: doc, vlimits: vlimits, tags: tags, ulimits: ulimits, topo: tdefs}, nil
}

// applyImport makes the changes of a checked document, user importing it.
func (s *Server) applyImport(plan *importPlan, user string) error {
	doc, vlimits, tags, ulimits := &plan.doc, plan.vlimits, plan.tags, plan.ulimits

	for i, u := range doc.Users {
		c := UserChange{Password: u.Password, PasswordHash: u.PasswordHash, HashingAlgorithm: u.HashingAlgorithm, Tags: tags[i]}
		if _, err := s.putUser(u.Name, c); err != nil {
			return fmt.Errorf("user '%s': %w", u.Name, err)
		}
		for _, name := range UserLimitNames {
			if v, ok := ulimits[i][name]; ok {
				if err := s.putUserLimit(u.Name, name, v); err != nil {
					return fmt.Errorf("limits of user '%s': %w", u.Name, err)
				}
			}
		}
	}
	for _, v := range doc.Vhosts {
		d := v.Description
		if d == "" {
			d = v.Metadata.Description
		}
		if _, err := s.putVhost(v.Name, d, v.Metadata.Tags, user); err != nil {
			return fmt.Errorf("vhost '%s': %w", v.Name, err)
		}
	}
	for _, l := range vlimits {
		for _, name := range VhostLimitNames {
			if v, ok := l.values[name]; ok {
				if err := s.putVhostLimit(l.vhost, name, v); err != nil {
					return fmt.Errorf("limits of vhost '%s': %w", l.vhost, err)
				}
			}
		}
	}
	for _, p := range doc.Permissions {
		if _, err := s.putPermission(p.Vhost, p.User, p.Configure, p.Write, p.Read); err != nil {
			return fmt.Errorf("permissions of '%s' in '%s': %w", p.User, p.Vhost, err)
		}
	}
	for _, p := range doc.TopicPermissions {
		if _, err := s.putTopicPermission(p.Vhost, p.User, p.Exchange, p.Write, p.Read); err != nil {
			return fmt.Errorf("topic permission of '%s' in '%s': %w", p.User, p.Vhost, err)
		}
	}
	for _, p := range doc.Policies {
		c := PolicyChange{Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: p.Definition}
		if _, err := s.putPolicy(p.Vhost, p.Name, c); err != nil {
			return fmt.Errorf("policy '%s' in '%s': %w", p.Name, p.Vhost, err)
		}
	}
	return s.importTopology(plan.topo)
}

// importTopology declares the exchanges, queues and bindings of defs that do not exist yet,
// as a client would: they are not the files' and a reload never removes them.
func (s *Server) importTopology(defs *configs.Definitions) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, it := range defs.Exchanges {
		if s.vhost(it.Vhost) == nil {
			return refused("vhost_not_found: %s", it.Vhost)
		}
	}
	t := &configs.Definitions{Bindings: defs.Bindings}
	for _, x := range defs.Exchanges {
		if !s.vhost(x.Vhost).HasExchange(x.Name) && !strings.HasPrefix(x.Name, "amq.") && x.Name != "" {
			t.Exchanges = append(t.Exchanges, x)
		}
	}
	for _, q := range defs.Queues {
		v := s.vhost(q.Vhost)
		if v == nil {
			return refused("vhost_not_found: %s", q.Vhost)
		}
		if !v.HasQueue(q.Name) && !strings.HasPrefix(q.Name, "amq.") {
			t.Queues = append(t.Queues, q)
		}
	}
	for _, b := range defs.Bindings {
		if s.vhost(b.Vhost) == nil {
			return refused("vhost_not_found: %s", b.Vhost)
		}
	}
	// The live policies go along, so applying the topology leaves them as they are.
	for _, p := range s.livePolicies() {
		pol, err := checkPolicy(p.Vhost, p.Name, apiPolicy{Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: p.Definition})
		if err == nil {
			t.Policies = append(t.Policies, pol)
		}
	}
	plan, errs := s.vhosts.PlanTopology(t)
	if len(errs) > 0 {
		return refused("%s", errorReason(errs))
	}
	var scratch vhost.Managed // not the files': nothing the import declares is managed
	res := s.vhosts.ApplyTopology(plan, &scratch, s.log)
	s.refreshPolicies(s.fileDefs())
	s.log.Info().Strs("created", res.Created).Msg("definitions imported through the management API")
	return nil
}

// withoutQueues is a definitions document without its queues and the bindings to queues:
// in a cluster those are declared one by one (importQueues), the rest is one change.
func withoutQueues(data []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, refused("failed_to_parse_json")
	}
	delete(doc, "queues")
	if raw, ok := doc["bindings"]; ok {
		var bs []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &bs); err != nil {
			return nil, refused("failed_to_parse_json")
		}
		kept := make([]map[string]json.RawMessage, 0, len(bs))
		for _, b := range bs {
			var dest string
			if json.Unmarshal(b["destination_type"], &dest) == nil && dest == "exchange" {
				kept = append(kept, b)
			}
		}
		doc["bindings"] = mustJSON(kept)
	}
	return json.Marshal(doc)
}

// importQueues declares the queues of defs that do not exist yet, and binds them, each as a
// client's declaration through the management API would be: in a cluster each is its own
// change and gets a queue record (ImportDefinitions). defs was checked by planImport.
func (s *Server) importQueues(defs *configs.Definitions) error {
	var created []string
	for _, q := range defs.Queues {
		v := s.vhost(q.Vhost)
		if v == nil {
			return refused("vhost_not_found: %s", q.Vhost)
		}
		if v.HasQueue(q.Name) || strings.HasPrefix(q.Name, "amq.") {
			continue
		}
		args, err := amqpwire.NewTable(q.Arguments)
		if err != nil {
			return refused("queue '%s' in vhost '%s': arguments: %v", q.Name, q.Vhost, err)
		}
		if _, err := s.declareQueue(nil, v, vhost.QueueDecl{Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Args: args}); err != nil {
			return fmt.Errorf("queue '%s' in vhost '%s': %w", q.Name, q.Vhost, err)
		}
		created = append(created, q.Vhost+"/"+q.Name)
	}
	for _, b := range defs.Bindings {
		bb, err := vhost.BindingOf(b)
		if err != nil {
			return refused("binding from '%s' to '%s' in vhost '%s': %v", b.Source, b.Destination, b.Vhost, err)
		}
		if bb.Dest.Kind != binding.DestQueue {
			continue // imported with the rest of the document
		}
		v := s.vhost(b.Vhost)
		if v == nil {
			return refused("vhost_not_found: %s", b.Vhost)
		}
		if err := s.bind(nil, v, bb); err != nil {
			return fmt.Errorf("binding from '%s' to queue '%s' in vhost '%s': %w", b.Source, b.Destination, b.Vhost, err)
		}
	}
	if len(created) > 0 {
		s.log.Info().Strs("created", created).Msg("queues imported through the management API")
	}
	return nil
}

// checkImportRefs checks that what an import refers to exists, live or in the import itself:
// the vhosts of its items, and the sources and destinations of its bindings.
func (s *Server) checkImportRefs(doc *importDoc, t *configs.Definitions) error {
	vhosts := map[string]bool{}
	for _, v := range doc.Vhosts {
		vhosts[v.Name] = true
	}
	type vn struct{ vhost, name string }
	xs, qs := map[vn]bool{}, map[vn]bool{}
	for _, x := range t.Exchanges {
		xs[vn{x.Vhost, x.Name}] = true
	}
	for _, q := range t.Queues {
		qs[vn{q.Vhost, q.Name}] = true
	}
	hasVhost := func(name string) bool { return vhosts[name] || s.vhost(name) != nil }
	for _, p := range doc.Permissions {
		if !hasVhost(p.Vhost) {
			return refused("permissions of '%s': vhost_not_found: %s", p.User, p.Vhost)
		}
	}
	for _, p := range doc.Policies {
		if !hasVhost(p.Vhost) {
			return refused("policy '%s': vhost_not_found: %s", p.Name, p.Vhost)
		}
	}
	for _, x := range t.Exchanges {
		if !hasVhost(x.Vhost) {
			return refused("exchange '%s': vhost_not_found: %s", x.Name, x.Vhost)
		}
	}
	for _, q := range t.Queues {
		if !hasVhost(q.Vhost) {
			return refused("queue '%s': vhost_not_found: %s", q.Name, q.Vhost)
		}
	}
	exchangeExists := func(vh, name string) bool {
		if name == "" || xs[vn{vh, name}] {
			return true
		}
		v := s.vhost(vh)
		return v != nil && v.HasExchange(name) || v == nil && strings.HasPrefix(name, "amq.")
	}
	for _, b := range t.Bindings {
		if !hasVhost(b.Vhost) {
			return refused("binding: vhost_not_found: %s", b.Vhost)
		}
		if !exchangeExists(b.Vhost, b.Source) {
			return refused("binding: no exchange '%s' in vhost '%s'", b.Source, b.Vhost)
		}
		if b.DestinationType == "exchange" {
			if !exchangeExists(b.Vhost, b.Destination) {
				return refused("binding: no exchange '%s' in vhost '%s'", b.Destination, b.Vhost)
			}
			continue
		}
		v := s.vhost(b.Vhost)
		if !qs[vn{b.Vhost, b.Destination}] && (v == nil || !v.HasQueue(b.Destination)) {
			return refused("binding: no queue '%s' in vhost '%s'", b.Destination, b.Vhost)
		}
	}
	return nil
}

type importedLimits struct {
	vhost  string
	values map[string]int64
}

// importVhostLimits reads the runtime parameters of an import: vhost limits (component
// vhost-limits) are taken, any other component is refused.
func importVhostLimits(params []json.RawMessage) ([]importedLimits, error) {
	var out []importedLimits
	for _, raw := range params {
		var p struct {
			Vhost     string         `json:"vhost"`
			Component string         `json:"component"`
			Value     map[string]any `json:"value"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.Component != "vhost-limits" {
			return nil, refused("runtime parameters (federation upstreams, shovels and the like) are not supported; only vhost-limits are")
		}
		v, err := importLimits(p.Value, VhostLimitNames, "limits")
		if err != nil {
			return nil, refused("limits of vhost '%s': %s", p.Vhost, errorReason(err))
		}
		out = append(out, importedLimits{p.Vhost, v})
	}
	return out, nil
}

// importLimits checks limits from JSON: known names, integer values.
func importLimits(m map[string]any, names []string, component string) (map[string]int64, error) {
	out := map[string]int64{}
	for name, v := range m {
		f, isNum := v.(float64)
		if !slices.Contains(names, name) || !isNum || f != float64(int64(f)) {
			return nil, refused("Unrecognised terms or values %v in %s", m, component)
		}
		out[name] = int64(f)
	}
	return out, nil
}
