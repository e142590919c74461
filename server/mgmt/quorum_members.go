package mgmt

import (
	"errors"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster"
)

// quorumMemberSource changes the members of quorum queues (server/clusterquorum_members.go).
// Each change is recorded in the queue's metadata and applied by the queue's Raft leader
// afterwards, so a call returns once the change is recorded.
type quorumMemberSource interface {
	AddQuorumMember(vhost, queue, node string) error
	DeleteQuorumMember(vhost, queue, node string) error
	GrowQuorumQueues(node, vhostPattern, queuePattern, strategy string) ([]server.QuorumMemberResult, error)
	ShrinkQuorumQueues(node string) ([]server.QuorumMemberResult, error)
}

// quorumMemberEndpoints are RabbitMQ 3.13's quorum queue replica endpoints
// (rabbit_mgmt_wm_quorum_queue_replicas_*), for administrators.
func (a *api) quorumMemberEndpoints() []endpoint {
	return []endpoint{
		{http.MethodPost, "queues/quorum/{}/{}/replicas/add", a.addQuorumMember},
		{http.MethodDelete, "queues/quorum/{}/{}/replicas/delete", a.deleteQuorumMember},
		{http.MethodPost, "queues/quorum/replicas/on/{}/grow", a.growQuorumQueues},
		{http.MethodDelete, "queues/quorum/replicas/on/{}/shrink", a.shrinkQuorumQueues},
	}
}

// addQuorumMember is POST /api/queues/quorum/{vhost}/{queue}/replicas/add {"node": "n2"}:
// 204 once the new member is recorded (it catches up from the leader afterwards).
func (a *api) addQuorumMember(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh, queue := args[0], args[1]
	node, ok := a.quorumMemberNode(w, r, u)
	if !ok {
		return
	}
	if err := a.src.AddQuorumMember(vh, queue, node); err != nil {
		a.quorumMemberFailure(w, r, u, err)
		return
	}
	a.log.Info().Str("user", u.name).Str("vhost", vh).Str("queue", queue).Str("node", node).
		Msg("quorum queue member added")
	w.WriteHeader(http.StatusNoContent)
}

// deleteQuorumMember is DELETE /api/queues/quorum/{vhost}/{queue}/replicas/delete
// {"node": "n2"}: 202, as RabbitMQ answers, once the removal is recorded.
func (a *api) deleteQuorumMember(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh, queue := args[0], args[1]
	node, ok := a.quorumMemberNode(w, r, u)
	if !ok {
		return
	}
	if err := a.src.DeleteQuorumMember(vh, queue, node); err != nil {
		a.quorumMemberFailure(w, r, u, err)
		return
	}
	a.log.Info().Str("user", u.name).Str("vhost", vh).Str("queue", queue).Str("node", node).
		Msg("quorum queue member removed")
	w.WriteHeader(http.StatusAccepted)
}

// quorumMemberNode checks that u is an administrator and reads the body's "node".
func (a *api) quorumMemberNode(w http.ResponseWriter, r *http.Request, u user) (string, bool) {
	if !a.quorumMemberAdmin(w, r, u) {
		return "", false
	}
	body, err := decodeBody(r)
	if err == nil {
		err = requireKeys(body, "node")
	}
	var node string
	if err == nil {
		node, err = stringField(body, "node", "")
	}
	if err == nil && node == "" {
		err = bad("node must name a cluster member")
	}
	if err != nil {
		a.writeFailure(w, r, u, err, direct)
		return "", false
	}
	return node, true
}

// growQuorumQueues is POST /api/queues/quorum/replicas/on/{node}/grow {"strategy": "all" |
// "even", "vhost_pattern": regexp, "queue_pattern": regexp}: node joins every matching quorum
// queue. 204, as RabbitMQ answers; what happened to each queue is logged.
func (a *api) growQuorumQueues(w http.ResponseWriter, r *http.Request, u user, args []string) {
	node := args[0]
	if !a.quorumMemberAdmin(w, r, u) {
		return
	}
	body, err := decodeBody(r)
	if err == nil {
		err = requireKeys(body, "strategy")
	}
	var strategy, vhostPattern, queuePattern string
	if err == nil {
		strategy, err = stringField(body, "strategy", "")
	}
	if err == nil {
		vhostPattern, err = stringField(body, "vhost_pattern", "")
	}
	if err == nil {
		queuePattern, err = stringField(body, "queue_pattern", "")
	}
	if err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	results, err := a.src.GrowQuorumQueues(node, vhostPattern, queuePattern, strategy)
	if err != nil {
		a.quorumMemberFailure(w, r, u, err)
		return
	}
	a.logQuorumResults(u, "grow", node, results, func(e *zerolog.Event) *zerolog.Event {
		return e.Str("strategy", strategy).Str("vhost_pattern", vhostPattern).Str("queue_pattern", queuePattern)
	})
	w.WriteHeader(http.StatusNoContent)
}

// shrinkQuorumQueues is DELETE /api/queues/quorum/replicas/on/{node}/shrink: node leaves
// every quorum queue it is a member of (never as the last member). 202, as RabbitMQ answers;
// what happened to each queue is logged.
func (a *api) shrinkQuorumQueues(w http.ResponseWriter, r *http.Request, u user, args []string) {
	node := args[0]
	if !a.quorumMemberAdmin(w, r, u) {
		return
	}
	results, err := a.src.ShrinkQuorumQueues(node)
	if err != nil {
		a.quorumMemberFailure(w, r, u, err)
		return
	}
	a.logQuorumResults(u, "shrink", node, results, nil)
	w.WriteHeader(http.StatusAccepted)
}

// quorumResultsLogged is how many failed queues of one grow or shrink are logged one by one;
// the rest are counted in one line.
const quorumResultsLogged = 10

// logQuorumResults logs a grow or shrink: one info line with the counts, a warning for each
// queue left as it was (the first quorumResultsLogged, then how many more).
func (a *api) logQuorumResults(u user, op, node string, results []server.QuorumMemberResult, with func(*zerolog.Event) *zerolog.Event) {
	failed := 0
	for _, res := range results {
		if res.Error == "" {
			continue
		}
		failed++
		if failed <= quorumResultsLogged {
			a.log.Warn().Str("user", u.name).Str("operation", op).Str("node", node).Str("vhost", res.Vhost).
				Str("queue", res.Name).Int("members", res.Size).Str("reason", res.Error).
				Msg("quorum queue left as it was")
		}
	}
	if failed > quorumResultsLogged {
		a.log.Warn().Str("user", u.name).Str("operation", op).Str("node", node).Int("not_logged", failed-quorumResultsLogged).
			Msg("more quorum queues left as they were than are logged one by one")
	}
	e := a.log.Info().Str("user", u.name).Str("operation", op).Str("node", node).
		Int("queues", len(results)).Int("changed", len(results)-failed).Int("failed", failed)
	if with != nil {
		e = with(e)
	}
	e.Msg("quorum queue members changed")
}

// quorumMemberAdmin refuses a user without the administrator tag, as RabbitMQ's
// is_authorized_admin does.
func (a *api) quorumMemberAdmin(w http.ResponseWriter, r *http.Request, u user) bool {
	if u.isAdmin() {
		return true
	}
	a.refuse(w, r, u, http.StatusUnauthorized, "not_authorised", "Not administrator user")
	return false
}

// quorumMemberFailure answers a refused member change: 400 when the node runs alone or the
// change is not possible, 404 for a node that is not a cluster member, 503 while this node's
// cluster is starting (RabbitMQ's service_unavailable), and the API's usual answers otherwise
// (404 for a missing queue or vhost, 503 without a quorum).
func (a *api) quorumMemberFailure(w http.ResponseWriter, r *http.Request, u user, err error) {
	var qm *server.QuorumMemberError
	switch {
	case errors.Is(err, server.ErrNoSuchNode):
		a.refuse(w, r, u, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, cluster.ErrStarting):
		a.refuse(w, r, u, http.StatusServiceUnavailable, "service_unavailable", err.Error())
	case errors.Is(err, server.ErrNotClustered), errors.As(err, &qm):
		a.writeFailure(w, r, u, bad(err.Error()), direct)
	default:
		if status, _, _ := failure(err, direct); status == http.StatusInternalServerError {
			a.log.Error().Err(err).Str("user", u.name).Str("method", r.Method).Str("path", r.URL.EscapedPath()).
				Msg("quorum queue member change failed")
		}
		a.writeFailure(w, r, u, err, direct)
	}
}

// refuse answers status with RabbitMQ's error body and logs the refusal (summarised when
// they flood).
func (a *api) refuse(w http.ResponseWriter, r *http.Request, u user, status int, kind, reason string) {
	a.refusals.note(time.Now(), func(l *zerolog.Logger) {
		l.Info().Str("user", u.name).Str("method", r.Method).Str("path", r.URL.EscapedPath()).
			Int("status", status).Str("reason", reason).Msg("management request refused")
	})
	writeError(w, status, kind, reason)
}
