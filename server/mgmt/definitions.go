package mgmt

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/warrenmq/warren/configs"
)

// accMarshal encodes a value decoded from JSON, or made of JSON's values ("null" if it cannot).
func accMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

func argsJSON(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// getDefinitions serves GET /api/definitions (and /api/all-configuration) in RabbitMQ's
// export shape, and GET /api/definitions/{vhost}: that vhost's policies and topology, without
// the vhost key. ?download=NAME makes it an attachment.
func (a *api) getDefinitions(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	var only string
	if len(args) == 1 {
		only = args[0]
		if _, ok := a.src.VhostInfo(only); !ok {
			a.accBad(w, r, "vhost_not_found")
			return
		}
	}
	keep := func(vh string) bool { return only == "" || vh == only }
	item := func(m map[string]any) map[string]any {
		if only != "" {
			delete(m, "vhost")
		}
		return m
	}
	defs := a.src.ExportDefinitions()
	policies, queues, exchanges, bindings := []any{}, []any{}, []any{}, []any{}
	for _, p := range a.src.Policies() {
		if keep(p.Vhost) {
			policies = append(policies, policyJSON(p)) // RabbitMQ 3.10 keeps their vhost key
		}
	}
	for _, q := range defs.Queues {
		if keep(q.Vhost) {
			queues = append(queues, item(map[string]any{"name": q.Name, "vhost": q.Vhost, "durable": q.Durable,
				"auto_delete": q.AutoDelete, "arguments": argsJSON(q.Arguments)}))
		}
	}
	for _, x := range defs.Exchanges {
		if keep(x.Vhost) {
			exchanges = append(exchanges, item(map[string]any{"name": x.Name, "vhost": x.Vhost, "type": x.Type,
				"durable": x.Durable, "auto_delete": x.AutoDelete, "internal": x.Internal, "arguments": argsJSON(x.Arguments)}))
		}
	}
	for _, b := range defs.Bindings {
		if keep(b.Vhost) {
			dt := b.DestinationType
			if dt == "" {
				dt = "queue"
			}
			bindings = append(bindings, item(map[string]any{"source": b.Source, "vhost": b.Vhost, "destination": b.Destination,
				"destination_type": dt, "routing_key": b.RoutingKey, "arguments": argsJSON(b.Arguments)}))
		}
	}
	params := []any{} // RabbitMQ exports vhost limits as runtime parameters
	for _, l := range a.src.VhostLimits() {
		if keep(l.Name) {
			params = append(params, item(map[string]any{"vhost": l.Name, "component": "vhost-limits", "name": "limits", "value": l.Values}))
		}
	}
	out := map[string]any{"rabbit_version": RabbitMQVersion, "parameters": params, "policies": policies,
		"queues": queues, "exchanges": exchanges, "bindings": bindings}
	if only == "" {
		users, vhosts, perms, topics := []any{}, []any{}, []any{}, []any{}
		for _, u := range a.src.Users() {
			users = append(users, userJSON(u))
		}
		for _, v := range a.src.Vhosts() {
			vhosts = append(vhosts, map[string]any{"name": v.Name()})
		}
		for _, p := range a.src.Permissions() {
			perms = append(perms, permissionJSON(p))
		}
		for _, p := range a.src.TopicPermissions() {
			topics = append(topics, topicJSON(p))
		}
		out["rabbitmq_version"] = RabbitMQVersion
		out["product_name"] = a.id.Product.Name
		out["product_version"] = a.id.Product.Version
		out["users"], out["vhosts"], out["permissions"], out["topic_permissions"] = users, vhosts, perms, topics
		out["global_parameters"] = []any{}
	}
	if name := r.URL.Query().Get("download"); name != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	}
	writeJSON(w, out)
}

// postDefinitions imports RabbitMQ's definitions JSON, sent as the body (application/json,
// what rabbitmqadmin import sends) or as the field "file" of a multipart/form-data upload
// (the RabbitMQ UI's); /api/definitions/{vhost} imports into one vhost. 204 when done.
func (a *api) postDefinitions(w http.ResponseWriter, r *http.Request, u user, args []string) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var data []byte
	var err error
	redirect := ""
	switch mt {
	case "application/json":
		data, err = io.ReadAll(io.LimitReader(r.Body, accMaxBody))
	case "multipart/form-data":
		if err = r.ParseMultipartForm(accMaxBody); err == nil {
			redirect = r.FormValue("redirect")
			f, _, ferr := r.FormFile("file")
			if ferr != nil {
				a.accBad(w, r, "the form has no file field")
				return
			}
			data, err = io.ReadAll(io.LimitReader(f, accMaxBody))
			_ = f.Close()
		}
	default:
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	if err != nil {
		a.accBad(w, r, "cannot read the definitions: "+err.Error())
		return
	}
	vh := ""
	if len(args) == 1 {
		vh = args[0]
		if _, ok := a.src.VhostInfo(vh); !ok {
			notFound(w)
			return
		}
	}
	if err := a.src.ImportDefinitions(data, vh, u.name); err != nil {
		a.accFailed(w, r, err)
		return
	}
	a.log.Info().Str("vhost", vh).Int("bytes", len(data)).Msg("definitions imported through the management API")
	if redirect != "" && strings.HasPrefix(redirect, "/") && !strings.HasPrefix(redirect, "//") {
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// definitionsDrift serves GET /api/warren/definitions/drift, Warren's own: the difference
// between the definitions files (read again now) and the live broker.
func (a *api) definitionsDrift(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	d, err := a.src.DefinitionsDrift()
	if err != nil {
		var l configs.ErrorList
		if errors.As(err, &l) {
			a.accBad(w, r, "the definitions files do not load: "+err.Error())
			return
		}
		a.accFailed(w, r, err)
		return
	}
	writeJSON(w, d)
}
