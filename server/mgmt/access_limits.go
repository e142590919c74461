package mgmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/warrenmq/warren/server"
)

// limitsSource is what the vhost-limits and user-limits endpoints need from the broker.
type limitsSource interface {
	VhostLimits() []server.LimitsInfo
	UserLimits() []server.LimitsInfo
	PutVhostLimit(vhost, name string, value int64) error
	DeleteVhostLimit(vhost, name string) error
	PutUserLimit(user, name string, value int64) error
	DeleteUserLimit(user, name string) error
}

// limitsEndpoints are RabbitMQ's /api/vhost-limits and /api/user-limits.
func (a *api) limitsEndpoints() []endpoint {
	get, put, del := http.MethodGet, http.MethodPut, http.MethodDelete
	return []endpoint{
		{get, "vhost-limits", a.accAdmin(a.listVhostLimits)},
		{get, "vhost-limits/{}", a.accAdmin(a.listVhostLimits)},
		{put, "vhost-limits/{}/{}", a.accAdmin(a.putVhostLimit)},
		{del, "vhost-limits/{}/{}", a.accAdmin(a.deleteVhostLimit)},
		{get, "user-limits", a.accAdmin(a.listUserLimits)},
		{get, "user-limits/{}", a.accAdmin(a.listUserLimits)},
		{put, "user-limits/{}/{}", a.accAdmin(a.putUserLimit)},
		{del, "user-limits/{}/{}", a.accAdmin(a.deleteUserLimit)},
	}
}

// limitsJSON is RabbitMQ's listing: [{"vhost"|"user": name, "value": {limit: n}}], of one
// owner when only is not "".
func limitsJSON(ls []server.LimitsInfo, key, only string) []map[string]any {
	out := []map[string]any{}
	for _, l := range ls {
		if only == "" || l.Name == only {
			out = append(out, map[string]any{key: l.Name, "value": l.Values})
		}
	}
	return out
}

func (a *api) listVhostLimits(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	only := ""
	if len(args) == 1 {
		if only = args[0]; a.findVhost(only) == nil {
			notFound(w)
			return
		}
	}
	writeJSON(w, limitsJSON(a.src.VhostLimits(), "vhost", only))
}

func (a *api) listUserLimits(w http.ResponseWriter, _ *http.Request, _ user, args []string) {
	only := ""
	if len(args) == 1 {
		if only = args[0]; !a.userExists(only) {
			notFound(w)
			return
		}
	}
	writeJSON(w, limitsJSON(a.src.UserLimits(), "user", only))
}

func (a *api) userExists(name string) bool {
	_, ok := a.src.User(name)
	return ok
}

// limitValue reads the body's "value" as RabbitMQ does: an integer, else 400 with RabbitMQ's
// reason (wrapped as format says: vhost limits' reasons are "Validation failed" ones).
func (a *api) limitValue(w http.ResponseWriter, r *http.Request, name, format string) (int64, bool) {
	body, ok := a.accBody(w, r)
	if !ok || !a.accRequired(w, r, body, "value") {
		return 0, false
	}
	if f, ok := body["value"].(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f), true
	}
	a.accBad(w, r, fmt.Sprintf(format, fmt.Sprintf("%s should be a number, actually was %s", name, erlangTerm(body["value"]))))
	return 0, false
}

// erlangTerm writes a JSON value as RabbitMQ's reasons print it.
func erlangTerm(v any) string {
	switch v := v.(type) {
	case string:
		return `<<"` + v + `">>`
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case nil:
		return "null"
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func (a *api) putVhostLimit(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if a.findVhost(args[0]) == nil {
		writeError(w, http.StatusNotFound, "not_found", "vhost_not_found")
		return
	}
	v, ok := a.limitValue(w, r, args[1], "Validation failed\n\n%s\n")
	if !ok {
		return
	}
	if err := a.src.PutVhostLimit(args[0], args[1], v); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deleteVhostLimit(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if err := a.src.DeleteVhostLimit(args[0], args[1]); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) putUserLimit(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	v, ok := a.limitValue(w, r, args[1], "%s")
	if !ok {
		return
	}
	if err := a.src.PutUserLimit(args[0], args[1], v); err != nil {
		if errors.Is(err, server.ErrUserNotFound) {
			a.accBad(w, r, `["no_such_user","`+args[0]+`"]`)
			return
		}
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deleteUserLimit(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	if err := a.src.DeleteUserLimit(args[0], args[1]); err != nil {
		a.accFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
