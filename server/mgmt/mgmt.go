// Package mgmt is Warren's management HTTP API: the read side of RabbitMQ 3.10's
// rabbitmq_management (/api/overview, whoami, vhosts, queues, connections) and closing a
// connection, with RabbitMQ's JSON fields, status codes, error bodies and basic-auth rules,
// so rabbitmqadmin, monitoring scripts and client test suites that drive it work unchanged.
package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/mgmt/webui"
	"github.com/warrenmq/warren/server/vhost"
)

// RabbitMQVersion is the RabbitMQ version whose management API Warren follows.
const RabbitMQVersion = "3.10.25"

// Source is what the API reads from and acts on; *server.Server is one. Each side of the API
// names what else it needs in its own interface (readSource, writeSource, accessSource,
// opsSource).
type Source interface {
	readSource
	writeSource
	accessSource
	limitsSource
	opsSource
	quorumMemberSource

	Stats() server.Stats
	Vhosts() []*vhost.Vhost
	Login(user, password string, remote net.Addr) (server.Account, error)
	HasVhostAccess(user, vhost string) bool
	Connections() []server.ConnectionInfo
	CloseConnection(name, reason string) bool
	// QuorumQueueStatus is a replicated quorum queue's leader, members and Raft state.
	QuorumQueueStatus(vhost, name string) (server.QuorumQueueStatus, bool)
	// HolderStats are the counts of a queue another node holds, as that node reports them.
	HolderStats(vhost, name string) (forward.Stats, bool)
	// SetNodeReport and NodeReport: this node's /api/nodes object, given to the other
	// nodes of a cluster, and theirs, asked of them (nodes.go).
	SetNodeReport(fn func() []byte)
	NodeReport(ctx context.Context, name string) ([]byte, error)
}

// Identity names the node in the API's node and cluster_name fields.
type Identity struct {
	Node    string // e.g. warren@host
	Cluster string // cluster_name; "" is Node
	Product server.Product
	// Listen is the API's own listening address (host:port), for the listeners and contexts
	// of /api/overview and /api/nodes; "" leaves it out.
	Listen string
	// TLS says the API is served over HTTPS (protocol "https" in listeners and contexts).
	TLS bool
	// Membership reports the node's cluster membership; nil when it runs alone.
	Membership func() (cluster.Status, bool)
	// Members changes the membership (`warren ctl cluster join|leave`); nil when the node runs
	// alone.
	Members MemberChanger
	// StatsInterval is how often the counters are sampled for message rates; 0 is
	// RabbitMQ's collect_statistics_interval, 5 s. Tests set it shorter.
	StatsInterval time.Duration
}

// MemberChanger adds and removes cluster members (cluster.Node).
type MemberChanger interface {
	AddMember(name, addr string) error
	RemoveMember(name string) error
}

// api serves the endpoints.
type api struct {
	src Source
	id  Identity
	log zerolog.Logger
	// authLog is log sampled: a client retrying bad credentials does not flood the log.
	authLog zerolog.Logger
	// refusals logs refused requests (bad input, missing objects) with a summary when they
	// flood.
	refusals *refusalLog
	router   *router
	// rates holds the samples rates are computed from (rates.go).
	rates   rates
	started time.Time
	// clusterNameSet is the name PUT /api/cluster-name set; nil is id.Cluster.
	clusterNameSet atomic.Pointer[string]
}

// Handler serves the management API of src under /api, and the web UI (package webui) at /.
// It samples the broker's counters for message rates until ctx is done.
func Handler(ctx context.Context, src Source, id Identity, log zerolog.Logger) http.Handler {
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
	a := &api{src: src, id: id, log: log, started: time.Now(),
		authLog:  log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute}),
		refusals: &refusalLog{log: log}}
	a.router = newRouter(a.endpoints())
	src.SetNodeReport(func() []byte { return accMarshal(a.nodeJSON()) })
	interval := id.StatsInterval
	if interval <= 0 {
		interval = defaultStatsInterval
	}
	go a.sampleLoop(ctx, interval)
	return webui.Handler(a)
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

// handler serves one endpoint; args are the path's wildcard segments, unescaped, in order.
type handler func(w http.ResponseWriter, r *http.Request, u user, args []string)

// endpoint is one method on one path. Pattern is the path after /api/, with "{}" for a
// segment that is an argument (a vhost, a name), e.g. "queues/{}/{}/get".
type endpoint struct {
	method  string
	pattern string
	serve   handler
}

// endpoints is every endpoint of the API. Each file adds its own: the read side (objects.go
// and friends), declaring and deleting topology (write*.go), access control and definitions
// (access*.go), operations on queue contents and the broker's health (ops*.go).
func (a *api) endpoints() []endpoint {
	var all []endpoint
	for _, group := range [][]endpoint{a.readEndpoints(), a.writeEndpoints(), a.accessEndpoints(), a.limitsEndpoints(), a.opsEndpoints(), a.clusterEndpoints(), a.quorumMemberEndpoints()} {
		all = append(all, group...)
	}
	return all
}

// compiled is an endpoint with its pattern split into segments.
type compiled struct {
	endpoint
	seg []string
}

// router finds the endpoints of a path.
type router struct{ routes []compiled }

func newRouter(eps []endpoint) *router {
	r := &router{}
	for _, e := range eps {
		r.routes = append(r.routes, compiled{e, strings.Split(e.pattern, "/")})
	}
	return r
}

// match reports whether seg matches pattern p and, if so, its arguments.
func match(p, seg []string) ([]string, bool) {
	if len(p) != len(seg) {
		return nil, false
	}
	var args []string
	for i, s := range p {
		switch {
		case s == "{}":
			args = append(args, seg[i])
		case s != seg[i]:
			return nil, false
		}
	}
	return args, true
}

// specificity orders patterns: a literal segment beats a wildcard at the first place they
// differ, so /api/queues/{}/{}/get is not /api/queues/{vhost}/{name}/{something}.
func moreSpecific(a, b []string) bool {
	for i := range a {
		if (a[i] == "{}") != (b[i] == "{}") {
			return b[i] == "{}"
		}
	}
	return false
}

// lookup returns the endpoints of the most specific pattern matching seg (one per method)
// and the path's arguments; none is 404.
func (r *router) lookup(seg []string) ([]compiled, []string) {
	var best []compiled
	var args []string
	for _, c := range r.routes {
		a, ok := match(c.seg, seg)
		if !ok {
			continue
		}
		switch {
		case best == nil || moreSpecific(c.seg, best[0].seg):
			best, args = []compiled{c}, a
		case !moreSpecific(best[0].seg, c.seg):
			best = append(best, c)
		}
	}
	return best, args
}

// ServeHTTP routes, checks the method, then authenticates, in cowboy_rest's order.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	seg, ok := splitPath(r.URL.EscapedPath())
	if !ok || len(seg) < 2 || seg[0] != "api" {
		notFound(w)
		return
	}
	eps, args := a.router.lookup(seg[1:])
	if len(eps) == 0 {
		notFound(w)
		return
	}
	var allowed []string
	var serve handler
	for _, e := range eps {
		allowed = append(allowed, e.method)
		if e.method == r.Method || (r.Method == http.MethodHead && e.method == http.MethodGet) {
			serve = e.serve
		}
	}
	if slices.Contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	allowed = append(allowed, http.MethodOptions)
	switch {
	case r.Method == http.MethodOptions:
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		w.WriteHeader(http.StatusOK)
		return
	case serve == nil:
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	u, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	serve(w, r, u, args)
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
