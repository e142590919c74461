package mgmt

import (
	"net/http"
	"strconv"

	"github.com/warrenmq/warren/server"
)

func policyJSON(p server.PolicyInfo) map[string]any {
	def := p.Definition
	if def == nil {
		def = map[string]any{}
	}
	return map[string]any{"vhost": p.Vhost, "name": p.Name, "pattern": p.Pattern, "apply-to": p.ApplyTo,
		"definition": def, "priority": p.Priority}
}

// listPolicies serves /api/policies and /api/policies/{vhost}: any management user, for the
// vhosts they may access (RabbitMQ's is_authorized_vhost).
func (a *api) listPolicies(w http.ResponseWriter, r *http.Request, u user, args []string) {
	if len(args) == 1 {
		if _, ok := a.src.VhostInfo(args[0]); !ok {
			notFound(w)
			return
		}
		if !u.isAdmin() && !a.src.HasVhostAccess(u.name, args[0]) {
			writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access virtual host")
			return
		}
	}
	out := []map[string]any{}
	for _, p := range a.src.Policies() {
		if len(args) == 1 && p.Vhost != args[0] || !u.isAdmin() && !a.src.HasVhostAccess(u.name, p.Vhost) {
			continue
		}
		out = append(out, policyJSON(p))
	}
	a.replyList(w, r, out, false, "priority")
}

func (a *api) getPolicy(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	for _, p := range a.src.Policies() {
		if p.Vhost == args[0] && p.Name == args[1] {
			writeJSON(w, policyJSON(p))
			return
		}
	}
	notFound(w)
}

// putPolicy takes RabbitMQ's policy JSON: pattern and definition mandatory, priority and
// apply-to optional. Keys Warren does not honour are refused with 400 saying which.
func (a *api) putPolicy(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	body, ok := a.accBody(w, r)
	if !ok {
		return
	}
	if _, ok := a.src.VhostInfo(args[0]); !ok {
		writeError(w, http.StatusNotFound, "not_found", "vhost_not_found")
		return
	}
	if !a.accRequired(w, r, body, "pattern", "definition") {
		return
	}
	c := server.PolicyChange{Pattern: accStr(body, "pattern"), ApplyTo: accStr(body, "apply-to")}
	def, ok := body["definition"].(map[string]any)
	if !ok {
		a.accBad(w, r, "definition must be a JSON object")
		return
	}
	c.Definition = def
	switch p := body["priority"].(type) {
	case nil:
	case float64:
		c.Priority = int(p)
	case string:
		n, err := strconv.Atoi(p)
		if err != nil {
			a.accBad(w, r, "priority must be an integer")
			return
		}
		c.Priority = n
	default:
		a.accBad(w, r, "priority must be an integer")
		return
	}
	made, err := a.src.PutPolicy(args[0], args[1], c)
	if err != nil {
		a.accFailed(w, r, err)
		return
	}
	accCreated(w, made)
}

func (a *api) deletePolicy(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if err := a.src.DeletePolicy(args[0], args[1]); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listOperatorPolicies: Warren has no operator policies; the lists are empty.
func (a *api) listOperatorPolicies(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	if len(args) == 1 {
		if _, ok := a.src.VhostInfo(args[0]); !ok {
			notFound(w)
			return
		}
	}
	writeJSON(w, []any{})
}

// operatorPolicy: there are none to show or delete, and setting one is refused.
func (a *api) operatorPolicy(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	if r.Method == http.MethodPut {
		a.log.Info().Str("path", r.URL.Path).Msg("management request refused: operator policies are not supported")
		a.accBad(w, r, "operator policies are not supported by Warren; use a policy")
		return
	}
	notFound(w)
}

func vhostJSON(v server.VhostInfo, node string) map[string]any {
	tags := v.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{"name": v.Name, "description": v.Description, "tags": tags, "default_queue_type": "undefined",
		"metadata": map[string]any{"description": v.Description, "tags": tags}, "tracing": false,
		"cluster_state": map[string]string{node: "running"}}
}

func (a *api) getVhost(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	v := a.findVhost(args[0])
	if v == nil {
		notFound(w)
		return
	}
	m := a.vhostJSON(v, queueLists{})
	a.rates.fill(vhostKey(v.Name()), m)
	writeJSON(w, m)
}

// putVhost takes description, tags (a comma-separated string or a list) and tracing (which
// Warren does not have: true is refused).
func (a *api) putVhost(w http.ResponseWriter, r *http.Request, u user, args []string) {
	body, ok := a.accBody(w, r)
	if !ok {
		return
	}
	if t := body["tracing"]; t == true || t == "true" {
		a.accBad(w, r, "tracing is not supported by Warren")
		return
	}
	var tags []string
	if raw, ok := body["tags"]; ok {
		var err error
		if tags, err = server.ParseTags(accMarshal(raw)); err != nil {
			a.accFailed(w, r, err)
			return
		}
	}
	made, err := a.src.PutVhost(args[0], accStr(body, "description"), tags, u.name)
	if err != nil {
		a.accFailed(w, r, err)
		return
	}
	accCreated(w, made)
}

func (a *api) deleteVhost(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if err := a.src.DeleteVhost(args[0]); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
