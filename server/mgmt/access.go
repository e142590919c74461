package mgmt

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
)

// accessSource is what the access-control and definitions endpoints (vhosts, users,
// permissions, topic permissions, policies, definitions) need from the broker.
type accessSource interface {
	Users() []server.UserInfo
	User(name string) (server.UserInfo, bool)
	PutUser(name string, c server.UserChange) (bool, error)
	DeleteUser(name string) error
	DeleteUsers(names []string) error
	Permissions() []server.PermissionInfo
	PutPermission(vhost, user, configure, write, read string) (bool, error)
	DeletePermission(vhost, user string) error
	TopicPermissions() []server.TopicPermissionInfo
	PutTopicPermission(vhost, user, exchange, write, read string) (bool, error)
	DeleteTopicPermissions(vhost, user, exchange string) error
	VhostInfo(name string) (server.VhostInfo, bool)
	PutVhost(name, description string, tags []string, creator string) (bool, error)
	DeleteVhost(name string) error
	Policies() []server.PolicyInfo
	PutPolicy(vhost, name string, c server.PolicyChange) (bool, error)
	DeletePolicy(vhost, name string) error
	ExportDefinitions() *configs.Definitions
	ImportDefinitions(data []byte, vhost, user string) error
	DefinitionsDrift() (server.Drift, error)
}

// accessEndpoints are the endpoints of vhosts, users, permissions, policies and definitions.
func (a *api) accessEndpoints() []endpoint {
	get, put, del, post := http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPost
	return []endpoint{
		{get, "users", a.accAdmin(a.listUsers)},
		{get, "users/without-permissions", a.accAdmin(a.usersWithoutPermissions)},
		{post, "users/bulk-delete", a.accAdmin(a.bulkDeleteUsers)},
		{get, "users/{}", a.accAdmin(a.getUser)},
		{put, "users/{}", a.accAdmin(a.putUser)},
		{del, "users/{}", a.accAdmin(a.deleteUser)},
		{get, "users/{}/permissions", a.accAdmin(a.userPermissions)},
		{get, "users/{}/topic-permissions", a.accAdmin(a.userTopicPermissions)},
		{get, "permissions", a.accAdmin(a.listPermissions)},
		{get, "permissions/{}/{}", a.accAdmin(a.getPermission)},
		{put, "permissions/{}/{}", a.accAdmin(a.putPermission)},
		{del, "permissions/{}/{}", a.accAdmin(a.deletePermission)},
		{get, "topic-permissions", a.accAdmin(a.listTopicPermissions)},
		{get, "topic-permissions/{}/{}", a.accAdmin(a.getTopicPermission)},
		{put, "topic-permissions/{}/{}", a.accAdmin(a.putTopicPermission)},
		{del, "topic-permissions/{}/{}", a.accAdmin(a.deleteTopicPermission)},
		{del, "topic-permissions/{}/{}/{}", a.accAdmin(a.deleteTopicPermission)},
		{get, "vhosts/{}", a.accAdmin(a.getVhost)},
		{put, "vhosts/{}", a.accAdmin(a.putVhost)},
		{del, "vhosts/{}", a.accAdmin(a.deleteVhost)},
		{get, "vhosts/{}/permissions", a.accAdmin(a.vhostPermissions)},
		{get, "vhosts/{}/topic-permissions", a.accAdmin(a.vhostTopicPermissions)},
		{get, "policies", a.listPolicies},
		{get, "policies/{}", a.listPolicies},
		{get, "policies/{}/{}", a.accPolicyMaker(a.getPolicy)},
		{put, "policies/{}/{}", a.accPolicyMaker(a.putPolicy)},
		{del, "policies/{}/{}", a.accPolicyMaker(a.deletePolicy)},
		{get, "operator-policies", a.accAdmin(a.listOperatorPolicies)},
		{get, "operator-policies/{}", a.accAdmin(a.listOperatorPolicies)},
		{get, "operator-policies/{}/{}", a.accAdmin(a.operatorPolicy)},
		{put, "operator-policies/{}/{}", a.accAdmin(a.operatorPolicy)},
		{del, "operator-policies/{}/{}", a.accAdmin(a.operatorPolicy)},
		{get, "definitions", a.accAdmin(a.getDefinitions)},
		{get, "all-configuration", a.accAdmin(a.getDefinitions)},
		{post, "definitions", a.accAdmin(a.postDefinitions)},
		{post, "all-configuration", a.accAdmin(a.postDefinitions)},
		{get, "definitions/{}", a.accAdmin(a.getDefinitions)},
		{post, "definitions/{}", a.accAdmin(a.postDefinitions)},
		{get, "warren/definitions/drift", a.accAdmin(a.definitionsDrift)},
	}
}

// accAdmin lets only administrators through (RabbitMQ's is_authorized_admin).
func (a *api) accAdmin(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, u user, args []string) {
		if !u.isAdmin() {
			writeError(w, http.StatusUnauthorized, "not_authorised", "Not administrator user")
			return
		}
		h(w, r, u, args)
	}
}

// accPolicyMaker lets through administrators, and policymakers with access to the path's vhost
// (RabbitMQ's is_authorized_policies).
func (a *api) accPolicyMaker(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, u user, args []string) {
		if !u.isAdmin() && !(u.has("policymaker") && a.src.HasVhostAccess(u.name, args[0])) {
			writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access object")
			return
		}
		h(w, r, u, args)
	}
}

// accMaxBody bounds request bodies of these endpoints (definitions files included).
const accMaxBody = 64 << 20

// accBody decodes a JSON object body as RabbitMQ does: empty or null is {}, anything else
// that is not an object is 400. It answers the error itself.
func (a *api) accBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, accMaxBody))
	if err != nil {
		a.accBad(w, r, "cannot read the request body")
		return nil, false
	}
	if s := strings.TrimSpace(string(data)); s == "" || s == "null" || s == "undefined" {
		return map[string]any{}, true
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		a.accBad(w, r, "not_json")
		return nil, false
	}
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case string:
		a.accBad(w, r, "invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?")
	default:
		a.accBad(w, r, "not_json")
	}
	return nil, false
}

// accRequired answers 400 with RabbitMQ's key_missing reason when a key is missing.
func (a *api) accRequired(w http.ResponseWriter, r *http.Request, body map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := body[k]; !ok {
			a.accBad(w, r, "[{key_missing,"+k+"}]")
			return false
		}
	}
	return true
}

// accStr is body[key] as a string ("" when absent); numbers and booleans are written out.
func accStr(body map[string]any, key string) string {
	switch v := body[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// accCreated answers a PUT: 201 when it made the object, 204 when it changed one.
func accCreated(w http.ResponseWriter, made bool) {
	if made {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// accBad answers 400 with RabbitMQ's bad_request body and logs the refusal (sampled: at
// most 10 a minute, like refused logins, so a client repeating a bad request cannot flood
// the log).
func (a *api) accBad(w http.ResponseWriter, r *http.Request, reason string) {
	a.authLog.Info().Str("method", r.Method).Str("path", r.URL.Path).Str("peer", r.RemoteAddr).Str("reason", reason).
		Msg("management request refused")
	writeError(w, http.StatusBadRequest, "bad_request", reason)
}

// accFailed answers an error of a change: 404 for a missing object, 400 with the reason
// for a refusal, 500 (logged) otherwise.
func (a *api) accFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ref *server.RefusedError
	var nq *server.NoQuorumError
	switch {
	case errors.As(err, &nq):
		writeError(w, http.StatusServiceUnavailable, "no_quorum", nq.Text)
	case errors.Is(err, server.ErrNotFound):
		notFound(w)
	case errors.Is(err, server.ErrVhostNotFound):
		writeError(w, http.StatusNotFound, "not_found", "vhost_not_found")
	case errors.As(err, &ref):
		a.accBad(w, r, err.Error())
	default:
		a.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("management request failed")
		writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
	}
}
