// Package mgmt is Warren's management HTTP API: the read side of RabbitMQ 3.10's
// rabbitmq_management (/api/overview, whoami, vhosts, queues, connections) and closing a
// connection, with RabbitMQ's JSON fields, status codes, error bodies and basic-auth rules,
// so rabbitmqadmin, monitoring scripts and client test suites that drive it work unchanged.
package mgmt

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/vhost"
)

// RabbitMQVersion is the RabbitMQ version whose management API Warren follows.
const RabbitMQVersion = "3.10.25"

// Source is what the API reads from and acts on; *server.Server is one.
type Source interface {
	Stats() server.Stats
	Vhosts() []*vhost.Vhost
	Login(user, password string, remote net.Addr) (server.Account, error)
	HasVhostAccess(user, vhost string) bool
	Connections() []server.ConnectionInfo
	CloseConnection(name, reason string) bool
}

// Identity names the node in the API's node and cluster_name fields.
type Identity struct {
	Node    string // e.g. warren@host
	Cluster string // cluster_name; "" is Node
	Product server.Product
}

// api serves the endpoints.
type api struct {
	src Source
	id  Identity
	log zerolog.Logger
	// authLog is log sampled: a client retrying bad credentials does not flood the log.
	authLog zerolog.Logger
}

// Handler serves the management API of src under /api.
func Handler(src Source, id Identity, log zerolog.Logger) http.Handler {
	if id.Cluster == "" {
		id.Cluster = id.Node
	}
	if id.Product.Name == "" {
		id.Product.Name = server.DefaultProductName
	}
	if id.Product.Version == "" {
		id.Product.Version = server.Version
	}
	log = log.With().Str("component", "management").Logger()
	return &api{src: src, id: id, log: log,
		authLog: log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})}
}

// user is the authenticated caller.
type user struct {
	name string
	tags []string
}

func (u user) has(tags ...string) bool {
	for _, t := range tags {
		if slices.Contains(u.tags, t) {
			return true
		}
	}
	return false
}

func (u user) isAdmin() bool   { return u.has("administrator") }
func (u user) isMonitor() bool { return u.has("administrator", "monitoring") }

// route is one resource: the methods it allows (HEAD and OPTIONS come with GET) and its handler.
type route struct {
	methods []string
	serve   func(w http.ResponseWriter, r *http.Request, u user, args []string)
}

// resolve maps the path segments (unescaped) to a route and its arguments; ok false is 404.
func (a *api) resolve(seg []string) (route, []string, bool) {
	get := []string{http.MethodGet}
	if len(seg) < 2 || seg[0] != "api" {
		return route{}, nil, false
	}
	rest := seg[2:]
	switch seg[1] {
	case "overview":
		if len(rest) == 0 {
			return route{get, a.overview}, nil, true
		}
	case "whoami":
		if len(rest) == 0 {
			return route{get, a.whoami}, nil, true
		}
	case "vhosts":
		if len(rest) == 0 {
			return route{get, a.vhosts}, nil, true
		}
	case "queues":
		if len(rest) <= 2 {
			return route{get, a.queues}, rest, true
		}
	case "connections":
		switch len(rest) {
		case 0:
			return route{get, a.connections}, nil, true
		case 1:
			return route{[]string{http.MethodGet, http.MethodDelete}, a.connection}, rest, true
		}
	}
	return route{}, nil, false
}

// ServeHTTP routes, checks the method, then authenticates, in cowboy_rest's order.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	seg, ok := splitPath(r.URL.EscapedPath())
	if !ok {
		notFound(w)
		return
	}
	rt, args, ok := a.resolve(seg)
	if !ok {
		notFound(w)
		return
	}
	allowed := slices.Clone(rt.methods)
	if slices.Contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	allowed = append(allowed, http.MethodOptions)
	switch {
	case r.Method == http.MethodOptions:
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		w.WriteHeader(http.StatusOK)
		return
	case !slices.Contains(allowed, r.Method):
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	u, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	rt.serve(w, r, u, args)
}

// splitPath splits an escaped URL path into unescaped segments; a trailing slash is ignored,
// as Cowboy's router does.
func splitPath(p string) ([]string, bool) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	raw := strings.Split(p, "/")
	out := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		out[i] = u
	}
	return out, true
}

// authenticate applies RabbitMQ's rules (rabbit_mgmt_util is_authorized): basic auth against
// the broker's users, loopback users from loopback only, and a management tag.
func (a *api) authenticate(w http.ResponseWriter, r *http.Request) (user, bool) {
	name, pass, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="RabbitMQ Management"`)
		w.WriteHeader(http.StatusUnauthorized)
		return user{}, false
	}
	remote, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		remote = nil
	}
	var addr net.Addr
	if remote != nil {
		addr = remote
	}
	acct, err := a.src.Login(name, pass, addr)
	switch {
	case errors.Is(err, server.ErrLoopbackOnly):
		writeError(w, http.StatusUnauthorized, "not_authorised", "User can only log in via localhost")
		return user{}, false
	case err != nil: // refused (logged in summary by the server), or the broker is stopping
		w.Header().Set("WWW-Authenticate", `Basic realm="RabbitMQ Management"`)
		writeError(w, http.StatusUnauthorized, "not_authorized", "Not_Authorized")
		return user{}, false
	}
	u := user{name: acct.Name, tags: acct.Tags}
	if !u.has("administrator", "monitoring", "policymaker", "management") {
		a.authLog.Warn().Str("user", name).Str("peer", r.RemoteAddr).Msg("HTTP access denied: not a management user")
		writeError(w, http.StatusUnauthorized, "not_authorised", "Not management user")
		return user{}, false
	}
	return u, true
}

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Vary", "accept, accept-encoding, origin")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with RabbitMQ's error body {"error": kind, "reason": reason}.
func writeError(w http.ResponseWriter, status int, kind, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": kind, "reason": reason})
}

// notFound is the 404 RabbitMQ's web dispatch writes for a missing object or path.
func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "Object Not Found", "Not Found")
}
