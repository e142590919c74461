package mgmt

import (
	"encoding/json"
	"maps"
	"net/http"

	"github.com/warrenmq/warren/server"
)

func userJSON(u server.UserInfo) map[string]any {
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	limits := map[string]int64{}
	maps.Copy(limits, u.Limits)
	return map[string]any{"name": u.Name, "password_hash": u.PasswordHash, "hashing_algorithm": u.HashingAlgorithm,
		"tags": tags, "limits": limits}
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	out := []map[string]any{}
	for _, u := range a.src.Users() {
		out = append(out, userJSON(u))
	}
	a.replyList(w, r, out, true, "name")
}

func (a *api) usersWithoutPermissions(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	has := map[string]bool{}
	for _, p := range a.src.Permissions() {
		has[p.User] = true
	}
	out := []map[string]any{}
	for _, u := range a.src.Users() {
		if !has[u.Name] {
			out = append(out, userJSON(u))
		}
	}
	a.replyList(w, r, out, false, "name")
}

func (a *api) getUser(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	u, ok := a.src.User(args[0])
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, userJSON(u))
}

// putUser is RabbitMQ's put_user: tags mandatory (a comma-separated string or a list, or the
// legacy "administrator": true), password or password_hash (not both), hashing_algorithm.
func (a *api) putUser(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	body, ok := a.accBody(w, r)
	if !ok {
		return
	}
	var c server.UserChange
	rawTags, hasTags := body["tags"]
	if !hasTags {
		if admin, ok := body["administrator"]; ok && (admin == true || admin == "true") {
			rawTags, hasTags = "administrator", true
		}
	}
	if !hasTags {
		a.accBad(w, r, "tags_not_present")
		return
	}
	raw, _ := json.Marshal(rawTags)
	tags, err := server.ParseTags(raw)
	if err != nil {
		a.accFailed(w, r, err)
		return
	}
	c.Tags = tags
	pw, hasPW := body["password"]
	hash, hasHash := body["password_hash"]
	if hasPW && hasHash {
		a.accBad(w, r, "both_password_and_password_hash_are_provided")
		return
	}
	if hasPW {
		s := accStr(body, "password")
		if pw == nil {
			s = ""
		}
		c.Password = &s
	}
	if hasHash {
		s, _ := hash.(string)
		c.PasswordHash = &s
	}
	c.HashingAlgorithm = accStr(body, "hashing_algorithm")
	made, err := a.src.PutUser(args[0], c)
	if err != nil {
		a.accFailed(w, r, err)
		return
	}
	accCreated(w, made)
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if err := a.src.DeleteUser(args[0]); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bulkDeleteUsers is POST /api/users/bulk-delete {"users": [...]}: users that do not exist
// are a 400 naming them, as in RabbitMQ (the ones before it are deleted).
func (a *api) bulkDeleteUsers(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	body, ok := a.accBody(w, r)
	if !ok || !a.accRequired(w, r, body, "users") {
		return
	}
	list, _ := body["users"].([]any)
	for _, v := range list {
		name, _ := v.(string)
		if err := a.src.DeleteUser(name); err != nil {
			if err == server.ErrNotFound {
				a.accBad(w, r, `["no_such_user","`+name+`"]`)
				return
			}
			a.accFailed(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func permissionJSON(p server.PermissionInfo) map[string]any {
	return map[string]any{"user": p.User, "vhost": p.Vhost, "configure": p.Configure, "write": p.Write, "read": p.Read}
}

// permissionsWhere lists the permissions that keep says to.
func (a *api) permissionsWhere(keep func(server.PermissionInfo) bool) []map[string]any {
	out := []map[string]any{}
	for _, p := range a.src.Permissions() {
		if keep(p) {
			out = append(out, permissionJSON(p))
		}
	}
	return out
}

func (a *api) listPermissions(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	a.replyList(w, r, a.permissionsWhere(func(server.PermissionInfo) bool { return true }), false, "vhost", "user")
}

func (a *api) userPermissions(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if _, ok := a.src.User(args[0]); !ok {
		notFound(w)
		return
	}
	a.replyList(w, r, a.permissionsWhere(func(p server.PermissionInfo) bool { return p.User == args[0] }), false, "vhost", "user")
}

func (a *api) vhostPermissions(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if _, ok := a.src.VhostInfo(args[0]); !ok {
		notFound(w)
		return
	}
	a.replyList(w, r, a.permissionsWhere(func(p server.PermissionInfo) bool { return p.Vhost == args[0] }), false, "vhost", "user")
}

func (a *api) getPermission(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	l := a.permissionsWhere(func(p server.PermissionInfo) bool { return p.Vhost == args[0] && p.User == args[1] })
	if len(l) == 0 {
		notFound(w)
		return
	}
	writeJSON(w, l[0])
}

func (a *api) putPermission(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	body, ok := a.accBody(w, r)
	if !ok || !a.accRequired(w, r, body, "configure", "write", "read") {
		return
	}
	made, err := a.src.PutPermission(args[0], args[1], accStr(body, "configure"), accStr(body, "write"), accStr(body, "read"))
	if err != nil {
		a.accFailed(w, r, err)
		return
	}
	accCreated(w, made)
}

func (a *api) deletePermission(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if err := a.src.DeletePermission(args[0], args[1]); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func topicJSON(p server.TopicPermissionInfo) map[string]any {
	return map[string]any{"user": p.User, "vhost": p.Vhost, "exchange": p.Exchange, "write": p.Write, "read": p.Read}
}

func (a *api) topicsWhere(keep func(server.TopicPermissionInfo) bool) []map[string]any {
	out := []map[string]any{}
	for _, p := range a.src.TopicPermissions() {
		if keep(p) {
			out = append(out, topicJSON(p))
		}
	}
	return out
}

func (a *api) listTopicPermissions(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	a.replyList(w, r, a.topicsWhere(func(server.TopicPermissionInfo) bool { return true }), false, "vhost", "user")
}

func (a *api) userTopicPermissions(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if _, ok := a.src.User(args[0]); !ok {
		notFound(w)
		return
	}
	a.replyList(w, r, a.topicsWhere(func(p server.TopicPermissionInfo) bool { return p.User == args[0] }), false, "vhost", "user")
}

func (a *api) vhostTopicPermissions(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if _, ok := a.src.VhostInfo(args[0]); !ok {
		notFound(w)
		return
	}
	a.replyList(w, r, a.topicsWhere(func(p server.TopicPermissionInfo) bool { return p.Vhost == args[0] }), false, "vhost", "user")
}

// getTopicPermission answers the list of user's topic permissions in the vhost, one per
// exchange, as RabbitMQ does; none is 404.
func (a *api) getTopicPermission(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	l := a.topicsWhere(func(p server.TopicPermissionInfo) bool { return p.Vhost == args[0] && p.User == args[1] })
	if len(l) == 0 {
		notFound(w)
		return
	}
	writeJSON(w, l)
}

func (a *api) putTopicPermission(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	body, ok := a.accBody(w, r)
	if !ok || !a.accRequired(w, r, body, "exchange", "write", "read") {
		return
	}
	made, err := a.src.PutTopicPermission(args[0], args[1], accStr(body, "exchange"), accStr(body, "write"), accStr(body, "read"))
	if err != nil {
		a.accFailed(w, r, err)
		return
	}
	accCreated(w, made)
}

func (a *api) deleteTopicPermission(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	exchange := ""
	if len(args) == 3 {
		exchange = args[2]
	}
	if err := a.src.DeleteTopicPermissions(args[0], args[1], exchange); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
