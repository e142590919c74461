package mgmt

import (
	"net/http"
)

// clusterEndpoints are Warren's own cluster endpoints (RabbitMQ has none of the kind; its
// /api/nodes lists nodes without Raft's view).
func (a *api) clusterEndpoints() []endpoint {
	return []endpoint{{http.MethodGet, "warren/cluster", a.clusterStatus}}
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
