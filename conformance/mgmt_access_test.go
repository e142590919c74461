package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The access-control and definitions side of the management API: users, permissions, topic
// permissions, vhosts, policies and definitions, with RabbitMQ's bodies, codes and texts. Every
// test here passes against RabbitMQ 3.10 too (MGMT_URL, see mgmt_harness_test.go).

// amqpURLAs is the broker's AMQP URL with user:pass and vhost.
func amqpURLAs(t *testing.T, user, pass, vhost string) string {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	u.Path = "/" + vhost
	u.RawPath = "/" + esc(vhost)
	return u.String()
}

// wantReason checks a 400-class answer's status and that its reason contains part.
func wantReason(t *testing.T, a *api, method, path string, body any, status int, part string) {
	t.Helper()
	code, out := a.do(method, path, body)
	if code != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, status, out)
	}
	var e struct{ Error, Reason string }
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%s %s: body %q is not RabbitMQ's error JSON: %v", method, path, out, err)
	}
	if !strings.Contains(e.Reason, part) {
		t.Errorf("%s %s: reason %q, want it to contain %q", method, path, e.Reason, part)
	}
}

// deleteUserLater removes a user at the end of the test (RabbitMQ keeps them otherwise).
func deleteUserLater(t *testing.T, a *api, name string) {
	t.Cleanup(func() { a.do(http.MethodDelete, "/api/users/"+esc(name), nil) })
}

// A user made through the API has RabbitMQ's fields, takes tags as a comma string or a list,
// logs in over AMQP once it has permissions, and loses its connections when deleted.
func TestMgmtUserLifecycle(t *testing.T) {
	a := mgmtAPI(t)
	name := uniqueName(t, "user")
	deleteUserLater(t, a, name)
	path := "/api/users/" + esc(name)

	a.json(http.MethodPut, path, map[string]any{"password": "s3cret", "tags": "monitoring,management"}, http.StatusCreated, nil)
	var u map[string]any
	a.json(http.MethodGet, path, nil, http.StatusOK, &u)
	if u["name"] != name || u["hashing_algorithm"] != "rabbit_password_hashing_sha256" || u["password_hash"] == "" {
		t.Errorf("user = %v", u)
	}
	if tags, _ := json.Marshal(u["tags"]); string(tags) != `["monitoring","management"]` {
		t.Errorf("tags = %s, want the comma string split into a list", tags)
	}
	if _, ok := u["limits"].(map[string]any); !ok {
		t.Errorf("limits = %v, want {}", u["limits"])
	}
	a.json(http.MethodPut, path, map[string]any{"password": "s3cret", "tags": []string{"management"}}, http.StatusNoContent, nil)

	wantReason(t, a, http.MethodPut, path, map[string]any{"password": "x"}, http.StatusBadRequest, "tags_not_present")
	wantReason(t, a, http.MethodPut, path, map[string]any{"password": "x", "password_hash": "abc", "tags": ""},
		http.StatusBadRequest, "both_password_and_password_hash_are_provided")

	var users []map[string]any
	a.json(http.MethodGet, "/api/users/without-permissions", nil, http.StatusOK, &users)
	if !slices.ContainsFunc(users, func(m map[string]any) bool { return m["name"] == name }) {
		t.Errorf("users without permissions %v lack the new user", users)
	}

	// No permissions: the vhost is refused at connection.open.
	if c, err := amqp.Dial(amqpURLAs(t, name, "s3cret", "/")); err == nil {
		_ = c.Close()
		t.Fatal("a user without permissions opened a connection to /")
	}
	perm := "/api/permissions/%2F/" + esc(name)
	a.json(http.MethodPut, perm, map[string]any{"configure": ".*", "write": ".*", "read": ".*"}, http.StatusCreated, nil)
	a.json(http.MethodPut, perm, map[string]any{"configure": "^conf\\.", "write": ".*", "read": ".*"}, http.StatusNoContent, nil)
	var p map[string]any
	a.json(http.MethodGet, perm, nil, http.StatusOK, &p)
	if p["user"] != name || p["vhost"] != "/" || p["configure"] != "^conf\\." || p["write"] != ".*" || p["read"] != ".*" {
		t.Errorf("permission = %v", p)
	}
	var ups []map[string]any
	a.json(http.MethodGet, "/api/users/"+esc(name)+"/permissions", nil, http.StatusOK, &ups)
	if len(ups) != 1 || ups[0]["vhost"] != "/" {
		t.Errorf("user's permissions = %v", ups)
	}

	conn := dialConfig(t, amqpURLAs(t, name, "s3cret", "/"), amqp.Config{})
	closed := notifyConnClose(conn)
	ch := channel(t, conn)
	// The configure pattern is honoured: conf.* may be declared, other names not.
	q := uniqueName(t, "q")
	if _, err := ch.QueueDeclare(q, false, true, true, false, nil); err != nil {
		t.Fatalf("declare %s with configure ^conf\\.: %v", q, err)
	}
	_, err := ch.QueueDeclare("other."+q, false, true, false, false, nil)
	wantError(t, err, amqp.AccessRefused, "ACCESS_REFUSED - access to queue 'other."+q+"' in vhost '/' refused for user '"+name+"'")

	a.json(http.MethodDelete, path, nil, http.StatusNoContent, nil)
	wantClosed(t, closed, amqp.ConnectionForced, "CONNECTION_FORCED")
	if code, body := a.do(http.MethodGet, path, nil); code != http.StatusNotFound {
		t.Errorf("GET a deleted user: %d %s", code, body)
	}
	if code, body := a.do(http.MethodDelete, path, nil); code != http.StatusNotFound {
		t.Errorf("DELETE a deleted user: %d %s", code, body)
	}
}

// Permission changes are checked as RabbitMQ checks them.
func TestMgmtPermissionErrors(t *testing.T) {
	a := mgmtAPI(t)
	name := uniqueName(t, "user")
	deleteUserLater(t, a, name)
	a.json(http.MethodPut, "/api/users/"+esc(name), map[string]any{"password": "pw", "tags": ""}, http.StatusCreated, nil)
	perm := "/api/permissions/%2F/" + esc(name)

	wantReason(t, a, http.MethodPut, perm, map[string]any{"configure": ".*", "write": ".*"}, http.StatusBadRequest, "[{key_missing,read}]")
	wantReason(t, a, http.MethodPut, "/api/permissions/"+esc(uniqueName(t, "novhost"))+"/"+esc(name),
		map[string]any{"configure": ".*", "write": ".*", "read": ".*"}, http.StatusBadRequest, "vhost_or_user_not_found")
	wantReason(t, a, http.MethodPut, "/api/permissions/%2F/"+esc(uniqueName(t, "nouser")),
		map[string]any{"configure": ".*", "write": ".*", "read": ".*"}, http.StatusBadRequest, "vhost_or_user_not_found")
	if code, _ := a.do(http.MethodPut, perm, map[string]any{"configure": "(", "write": ".*", "read": ".*"}); code != http.StatusBadRequest {
		t.Errorf("an invalid regular expression: status %d, want 400", code)
	}
	if code, body := a.do(http.MethodGet, perm, nil); code != http.StatusNotFound {
		t.Errorf("GET permissions never set: %d %s", code, body)
	}
	if code, body := a.do(http.MethodDelete, perm, nil); code != http.StatusNotFound {
		t.Errorf("DELETE permissions never set: %d %s", code, body)
	}
	a.json(http.MethodPut, perm, map[string]any{"configure": "", "write": "^a", "read": ".*"}, http.StatusCreated, nil)
	a.json(http.MethodDelete, perm, nil, http.StatusNoContent, nil)
}

// Topic permissions are stored and listed per exchange.
func TestMgmtTopicPermissions(t *testing.T) {
	a := mgmtAPI(t)
	name := uniqueName(t, "user")
	deleteUserLater(t, a, name)
	a.json(http.MethodPut, "/api/users/"+esc(name), map[string]any{"password": "pw", "tags": ""}, http.StatusCreated, nil)
	path := "/api/topic-permissions/%2F/" + esc(name)
	if code, _ := a.do(http.MethodGet, path, nil); code != http.StatusNotFound {
		t.Errorf("GET topic permissions never set: %d, want 404", code)
	}
	wantReason(t, a, http.MethodPut, path, map[string]any{"write": "^a", "read": ".*"}, http.StatusBadRequest, "[{key_missing,exchange}]")
	a.json(http.MethodPut, path, map[string]any{"exchange": "amq.topic", "write": "^a", "read": ".*"}, http.StatusCreated, nil)
	var l []map[string]any
	a.json(http.MethodGet, path, nil, http.StatusOK, &l)
	if len(l) != 1 || l[0]["exchange"] != "amq.topic" || l[0]["write"] != "^a" || l[0]["read"] != ".*" || l[0]["user"] != name {
		t.Errorf("topic permissions = %v", l)
	}
	var all []map[string]any
	a.json(http.MethodGet, "/api/topic-permissions", nil, http.StatusOK, &all)
	if !slices.ContainsFunc(all, func(m map[string]any) bool { return m["user"] == name }) {
		t.Errorf("/api/topic-permissions lacks %s: %v", name, all)
	}
	a.json(http.MethodDelete, path, nil, http.StatusNoContent, nil)
	if code, _ := a.do(http.MethodGet, path, nil); code != http.StatusNotFound {
		t.Errorf("GET deleted topic permissions: %d, want 404", code)
	}
}
