package server

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/warrenmq/warren/configs"
)

// DriftItem is one object that differs between the definitions files and the live broker.
// Files and Live are the object as each has it (Files nil when only live, Live nil when only
// in the files).
type DriftItem struct {
	Kind  string `json:"kind"` // vhost, user, permission, topic-permission, policy, exchange, queue, binding
	Vhost string `json:"vhost,omitempty"`
	Name  string `json:"name"`
	Files any    `json:"files,omitempty"`
	Live  any    `json:"live,omitempty"`
}

// Drift is the difference between definitions files and the live broker.
type Drift struct {
	// OnlyLive are objects live but not in the files: made through the management API or
	// declared by clients.
	OnlyLive []DriftItem `json:"only_live"`
	// OnlyInFiles are objects the files declare that are not live: deleted by a client, or
	// added to the files since the last reload.
	OnlyInFiles []DriftItem `json:"only_in_files"`
	// Different are objects both have, with different properties.
	Different []DriftItem `json:"different"`
}

// driftEntry is one object of one side, keyed for comparison.
type driftEntry struct {
	kind, vhost, name string
	val               any
}

// driftEntries lists the objects of d in a comparable form.
func driftEntries(d *configs.Definitions) map[string]driftEntry {
	out := map[string]driftEntry{}
	add := func(kind, vh, name string, v any) {
		out[kind+"\x00"+vh+"\x00"+name] = driftEntry{kind, vh, name, v}
	}
	for _, v := range d.Vhosts {
		if v.Name != "/" || v.Limits.Set() {
			add("vhost", "", v.Name, map[string]any{"description": v.Description, "limits": vhostLimitMap(v.Limits)})
		}
	}
	for _, u := range d.Users {
		tags := slices.Clone(u.Tags)
		slices.Sort(tags)
		add("user", "", u.Name, map[string]any{"password_hash": u.PasswordHash,
			"hashing_algorithm": algorithmName(u.HashingAlgorithm), "tags": strings.Join(tags, ","), "limits": userLimitMap(u.Limits)})
	}
	for _, t := range d.TopicPermissions {
		add("topic-permission", t.Vhost, t.User+" on "+t.Exchange, map[string]any{"write": t.Write, "read": t.Read})
	}
	for _, p := range d.Permissions {
		add("permission", p.Vhost, p.User, map[string]any{"configure": p.Configure, "write": p.Write, "read": p.Read})
	}
	for _, p := range d.Policies {
		add("policy", p.Vhost, p.Name, map[string]any{"pattern": p.Pattern, "apply-to": applyTo(p.ApplyTo),
			"priority": p.Priority, "definition": policyDefinitionMap(p.Definition)})
	}
	for _, x := range d.Exchanges {
		add("exchange", x.Vhost, x.Name, map[string]any{"type": x.Type, "durable": x.Durable, "auto_delete": x.AutoDelete,
			"internal": x.Internal, "arguments": plainArgs(x.Arguments)})
	}
	for _, q := range d.Queues {
		add("queue", q.Vhost, q.Name, map[string]any{"durable": q.Durable, "auto_delete": q.AutoDelete, "arguments": plainArgs(q.Arguments)})
	}
	for _, b := range d.Bindings {
		dt := b.DestinationType
		if dt == "" {
			dt = "queue"
		}
		name := b.Source + " -> " + dt + " " + b.Destination + " (" + b.RoutingKey + ") " + string(mustJSON(plainArgs(b.Arguments)))
		add("binding", b.Vhost, name, map[string]any{})
	}
	return out
}

// plainArgs is arguments in the form both sides compare equal in (JSON numbers, no empty map).
func plainArgs(m map[string]any) any {
	if len(m) == 0 {
		return map[string]any{}
	}
	var out any
	if err := json.Unmarshal(mustJSON(m), &out); err != nil {
		return m
	}
	return out
}

// SetDefinitionsLoader gives the broker a way to read its definitions files as they are now,
// for DefinitionsDrift. Without one, drift compares with what the files applied last.
func (s *Server) SetDefinitionsLoader(load func() (*configs.Definitions, error)) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.loadDefs = load
}

// DefinitionsDrift compares the definitions files (read again with the loader, or what they
// applied last) with the live broker (its export: the files' objects, the API's, and the
// topology clients declared).
func (s *Server) DefinitionsDrift() (Drift, error) {
	s.applyMu.Lock()
	load := s.loadDefs
	s.applyMu.Unlock()
	var files *configs.Definitions
	if load != nil {
		var err error
		if files, err = load(); err != nil {
			return Drift{}, err
		}
	}
	if files == nil {
		s.applyMu.Lock()
		files = s.fileDefs()
		s.applyMu.Unlock()
	}
	fe, le := driftEntries(files), driftEntries(s.ExportDefinitions())
	d := Drift{OnlyLive: []DriftItem{}, OnlyInFiles: []DriftItem{}, Different: []DriftItem{}}
	for k, f := range fe {
		l, ok := le[k]
		switch {
		case !ok:
			d.OnlyInFiles = append(d.OnlyInFiles, DriftItem{Kind: f.kind, Vhost: f.vhost, Name: f.name, Files: f.val})
		case string(mustJSON(f.val)) != string(mustJSON(l.val)):
			d.Different = append(d.Different, DriftItem{Kind: f.kind, Vhost: f.vhost, Name: f.name, Files: f.val, Live: l.val})
		}
	}
	for k, l := range le {
		if _, ok := fe[k]; !ok {
			d.OnlyLive = append(d.OnlyLive, DriftItem{Kind: l.kind, Vhost: l.vhost, Name: l.name, Live: l.val})
		}
	}
	for _, l := range [][]DriftItem{d.OnlyLive, d.OnlyInFiles, d.Different} {
		slices.SortFunc(l, func(a, b DriftItem) int {
			return cmpOr(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Vhost, b.Vhost), strings.Compare(a.Name, b.Name))
		})
	}
	return d, nil
}
