package mgmt

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/warrenmq/warren/server/cluster"
)

// clusterEndpoints are Warren's own cluster endpoints (RabbitMQ has none of the kind; its
// /api/nodes lists nodes without Raft's view).
func (a *api) clusterEndpoints() []endpoint {
	return []endpoint{
		{http.MethodGet, "warren/cluster", a.clusterStatus},
		{http.MethodPost, "warren/cluster/members", a.addMember},
		{http.MethodDelete, "warren/cluster/members/{}", a.removeMember},
	}
}

// clusterStatus serves GET /api/warren/cluster to monitors: this node's view of the
// membership (leader, members, term, log indexes), or {"clustered": false}.
func (a *api) clusterStatus(w http.ResponseWriter, _ *http.Request, u user, _ []string) {
	if !u.isMonitor() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "Not monitor user")
		return
	}
	if a.id.Membership == nil {
		writeJSON(w, map[string]any{"clustered": false, "node": a.id.Node})
		return
	}
	st, _ := a.id.Membership()
	writeJSON(w, map[string]any{"clustered": true, "node": st.Node, "state": st.State, "leader": st.Leader,
		"term": st.Term, "last_index": st.LastIndex, "commit_index": st.CommitIndex,
		"applied_index": st.AppliedIndex, "members": st.Members, "rejoined": st.Rejoined})
}

// addMember serves POST /api/warren/cluster/members {"name": "n4", "address": "host:port"}
// to administrators: the node joins the membership (cluster.Node.AddMember). 201 once the
// change is committed.
func (a *api) addMember(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	if !a.memberChange(w, u) {
		return
	}
	body, err := decodeBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	name, _ := body["name"].(string)
	addr, _ := body["address"].(string)
	if name == "" || addr == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name and address (host:port of the node's cluster listener) are required")
		return
	}
	if err := a.id.Members.AddMember(name, addr); err != nil {
		a.memberChangeFailed(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// removeMember serves DELETE /api/warren/cluster/members/{name} to administrators.
func (a *api) removeMember(w http.ResponseWriter, _ *http.Request, u user, args []string) {
	if !a.memberChange(w, u) {
		return
	}
	if err := a.id.Members.RemoveMember(args[0]); err != nil {
		a.memberChangeFailed(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) memberChange(w http.ResponseWriter, u user) bool {
	if !u.isAdmin() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "Not administrator user")
		return false
	}
	if a.id.Members == nil {
		writeError(w, http.StatusBadRequest, "bad_request", "this node runs alone (no cluster-peers)")
		return false
	}
	return true
}

// memberChangeFailed answers a refused change: 409 from a node that does not lead the
// cluster (the body names the leader), 404 for an unknown member, 400 for bad input.
func (a *api) memberChangeFailed(w http.ResponseWriter, err error) {
	var nl *cluster.NotLeaderError
	switch {
	case errors.As(err, &nl):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "not_leader", "reason": err.Error(), "leader": nl.Leader})
	case errors.Is(err, cluster.ErrUnknownMember) || strings.Contains(err.Error(), cluster.ErrUnknownMember.Error()):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case strings.HasPrefix(err.Error(), "cluster:"):
		a.log.Warn().Err(err).Msg("cluster membership change failed")
		writeError(w, http.StatusServiceUnavailable, "cluster_change_failed", err.Error())
	default:
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	}
}
