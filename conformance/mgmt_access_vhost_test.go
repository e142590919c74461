package conformance

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A policy made through the API has RabbitMQ's JSON and applies to the queues it matches; keys
// that are not policy settings are refused with 400.
func TestMgmtPolicyLifecycle(t *testing.T) {
	a := mgmtAPI(t)
	_, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	name := uniqueName(t, "policy")
	path := "/api/policies/%2F/" + esc(name)
	t.Cleanup(func() { a.do(http.MethodDelete, path, nil) })
	pattern := "^" + regexpQuote(q) + "$"

	wantReason(t, a, http.MethodPut, path, map[string]any{"pattern": pattern, "definition": map[string]any{"max-length": 1, "bogus-key": 1}},
		http.StatusBadRequest, "bogus-key")
	wantReason(t, a, http.MethodPut, path, map[string]any{"definition": map[string]any{"max-length": 1}}, http.StatusBadRequest, "[{key_missing,pattern}]")
	wantReason(t, a, http.MethodPut, "/api/policies/"+esc(uniqueName(t, "novhost"))+"/"+esc(name),
		map[string]any{"pattern": pattern, "definition": map[string]any{"max-length": 1}}, http.StatusNotFound, "vhost_not_found")

	a.json(http.MethodPut, path, map[string]any{"pattern": pattern, "definition": map[string]any{"max-length": 1}, "apply-to": "queues"},
		http.StatusCreated, nil)
	var p map[string]any
	a.json(http.MethodGet, path, nil, http.StatusOK, &p)
	if p["vhost"] != "/" || p["name"] != name || p["pattern"] != pattern || p["apply-to"] != "queues" || p["priority"] != float64(0) {
		t.Errorf("policy = %v", p)
	}
	if def, _ := json.Marshal(p["definition"]); string(def) != `{"max-length":1}` {
		t.Errorf("definition = %s", def)
	}
	var l []map[string]any
	a.json(http.MethodGet, "/api/policies/%2F", nil, http.StatusOK, &l)
	if !slices.ContainsFunc(l, func(m map[string]any) bool { return m["name"] == name }) {
		t.Errorf("/api/policies/%%2F lacks %s", name)
	}

	// max-length 1 keeps the newest message only (RabbitMQ applies policies within a moment).
	pub := newPublisher(t, dial(t))
	deadline := time.Now().Add(timeout)
	for {
		pub.toQueue(q, "a", "b", "c")
		if n, _ := queueCounts(t, ch, q); n == 1 || time.Now().After(deadline) {
			wantMessages(t, ch, q, 1)
			break
		}
		if _, err := ch.QueuePurge(q, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the policy reaches the queue asynchronously in RabbitMQ
	}

	a.json(http.MethodPut, path, map[string]any{"pattern": pattern, "definition": map[string]any{"max-length": 2}, "priority": 3},
		http.StatusNoContent, nil)
	a.json(http.MethodDelete, path, nil, http.StatusNoContent, nil)
	if code, _ := a.do(http.MethodDelete, path, nil); code != http.StatusNotFound {
		t.Errorf("DELETE a deleted policy: %d, want 404", code)
	}
}

// regexpQuote escapes the regex characters queue names use (dots).
func regexpQuote(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// A vhost made through the API gives its creator every permission; deleting it closes its
// connections with 320 CONNECTION_FORCED and takes its queues.
func TestMgmtVhostLifecycle(t *testing.T) {
	a := mgmtAPI(t)
	vh := uniqueName(t, "vhost")
	path := "/api/vhosts/" + esc(vh)
	t.Cleanup(func() { a.do(http.MethodDelete, path, nil) })

	a.json(http.MethodPut, path, map[string]any{"description": "made by a test", "tags": "a,b"}, http.StatusCreated, nil)
	a.json(http.MethodPut, path, map[string]any{"description": "made by a test", "tags": "a,b"}, http.StatusNoContent, nil)
	var v map[string]any
	a.json(http.MethodGet, path, nil, http.StatusOK, &v)
	if v["name"] != vh || v["description"] != "made by a test" {
		t.Errorf("vhost = %v", v)
	}
	if tags, _ := json.Marshal(v["tags"]); string(tags) != `["a","b"]` {
		t.Errorf("tags = %s", tags)
	}
	var perms []map[string]any
	a.json(http.MethodGet, path+"/permissions", nil, http.StatusOK, &perms)
	if len(perms) != 1 || perms[0]["user"] != "guest" || perms[0]["configure"] != ".*" {
		t.Errorf("the new vhost's permissions = %v, want guest's .* (its creator)", perms)
	}

	conn := dialConfig(t, amqpURLAs(t, "guest", "guest", vh), amqp.Config{})
	closed := notifyConnClose(conn)
	ch := channel(t, conn)
	if _, err := ch.QueueDeclare("q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	a.json(http.MethodDelete, path, nil, http.StatusNoContent, nil)
	// Warren says "is deleted"; RabbitMQ says that or, when the vhost's processes stop first,
	// "is down".
	want := "CONNECTION_FORCED - vhost '" + vh + "' is deleted"
	if external {
		want = "CONNECTION_FORCED - vhost '" + vh + "' is "
	}
	wantClosed(t, closed, amqp.ConnectionForced, want)
	if code, _ := a.do(http.MethodGet, path, nil); code != http.StatusNotFound {
		t.Errorf("GET a deleted vhost: %d, want 404", code)
	}
	if code, _ := a.do(http.MethodDelete, path, nil); code != http.StatusNotFound {
		t.Errorf("DELETE a deleted vhost: %d, want 404", code)
	}
	if _, err := amqp.Dial(amqpURLAs(t, "guest", "guest", vh)); err == nil {
		t.Error("connected to a deleted vhost")
	}
	// Made again, it is empty: the queue went with it.
	a.json(http.MethodPut, path, nil, http.StatusCreated, nil)
	ch2 := channel(t, dialConfig(t, amqpURLAs(t, "guest", "guest", vh), amqp.Config{}))
	_, err := ch2.QueueDeclarePassive("q", true, false, false, false, nil)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue 'q' in vhost '"+vh+"'")
}

// Only administrators manage users and vhosts; a policymaker manages policies in its vhosts.
func TestMgmtAccessNeedsTags(t *testing.T) {
	a := mgmtAPI(t)
	name := uniqueName(t, "user")
	deleteUserLater(t, a, name)
	a.json(http.MethodPut, "/api/users/"+esc(name), map[string]any{"password": "pw", "tags": "policymaker"}, http.StatusCreated, nil)
	a.json(http.MethodPut, "/api/permissions/%2F/"+esc(name), map[string]any{"configure": ".*", "write": ".*", "read": ".*"}, http.StatusCreated, nil)
	pm := &api{t: t, user: name, pass: "pw"}
	wantReason(t, pm, http.MethodGet, "/api/users", nil, http.StatusUnauthorized, "Not administrator user")
	wantReason(t, pm, http.MethodPut, "/api/vhosts/"+esc(uniqueName(t, "v")), nil, http.StatusUnauthorized, "Not administrator user")
	pol := "/api/policies/%2F/" + esc(uniqueName(t, "policy"))
	t.Cleanup(func() { a.do(http.MethodDelete, pol, nil) })
	pm.json(http.MethodPut, pol, map[string]any{"pattern": "^nothing-matches-this$", "definition": map[string]any{"max-length": 5}}, http.StatusCreated, nil)
	pm.json(http.MethodDelete, pol, nil, http.StatusNoContent, nil)
}
