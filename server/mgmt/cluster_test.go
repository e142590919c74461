package mgmt_test

import (
	"encoding/json"
	"testing"
)

// TestClusterStatusAlone: /api/warren/cluster tells a monitor that a node without
// cluster-peers runs alone, and refuses a plain management user as RabbitMQ's node endpoints do.
func TestClusterStatusAlone(t *testing.T) {
	b := startBroker(t)
	code, _, body := call(t, "GET", b.api+"/api/warren/cluster", "guest", "guest")
	var v struct {
		Clustered bool   `json:"clustered"`
		Node      string `json:"node"`
	}
	if code != 200 || json.Unmarshal(body, &v) != nil || v.Clustered || v.Node != "warren@test" {
		t.Fatalf("GET /api/warren/cluster as guest: %d %s", code, body)
	}
	if code, _, body := call(t, "GET", b.api+"/api/warren/cluster", "mgr", "mgrpw"); code != 401 {
		t.Fatalf("as a management user: %d %s, want 401", code, body)
	}
}
