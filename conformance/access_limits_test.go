package conformance

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Vhost limits (max-connections, max-queues) and user limits (max-connections, max-channels),
// https://www.rabbitmq.com/docs/vhosts#limits and https://www.rabbitmq.com/docs/user-limits,
// set through the management API's /api/vhost-limits and /api/user-limits, with RabbitMQ's
// codes and texts. They pass against RabbitMQ 3.10 too (they need MGMT_URL).
// (conformance/limits_test.go holds the queue length limits.)

// limitVhost makes a vhost where guest has every permission, deleted when the test ends.
func limitVhost(t *testing.T, a *api) string {
	t.Helper()
	vh := uniqueName(t, "vhost")
	a.json(http.MethodPut, "/api/vhosts/"+esc(vh), map[string]any{}, http.StatusCreated, nil)
	t.Cleanup(func() { a.do(http.MethodDelete, "/api/vhosts/"+esc(vh), nil) })
	a.json(http.MethodPut, "/api/permissions/"+esc(vh)+"/guest", map[string]any{"configure": ".*", "write": ".*", "read": ".*"},
		http.StatusNoContent, nil)
	return vh
}

// limitUser makes a user with every permission on vh.
func limitUser(t *testing.T, a *api, vh string) string {
	t.Helper()
	name := uniqueName(t, "user")
	deleteUserLater(t, a, name)
	a.json(http.MethodPut, "/api/users/"+esc(name), map[string]any{"password": "pw", "tags": ""}, http.StatusCreated, nil)
	a.json(http.MethodPut, "/api/permissions/"+esc(vh)+"/"+esc(name), map[string]any{"configure": ".*", "write": ".*", "read": ".*"},
		http.StatusCreated, nil)
	return name
}

// wantDialRefused dials url and wants the handshake refused with code and text.
func wantDialRefused(t *testing.T, url string, code int, text string) {
	t.Helper()
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err == nil {
		_ = c.Close()
		t.Fatalf("connection opened, want %d %q", code, text)
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		t.Fatalf("dial: %v, want %d %q", err, code, text)
	}
	checkError(t, ae, code, text)
	if ae.Reason != text {
		t.Errorf("reply text = %q, want %q", ae.Reason, text)
	}
}

// The limit endpoints take and show RabbitMQ's JSON, and refuse what RabbitMQ refuses.
func TestLimitsAPI(t *testing.T) {
	a := mgmtAPI(t)
	vh := limitVhost(t, a)
	user := limitUser(t, a, vh)
	vpath := "/api/vhost-limits/" + esc(vh)
	upath := "/api/user-limits/" + esc(user)

	a.json(http.MethodPut, vpath+"/max-connections", map[string]any{"value": 10}, http.StatusNoContent, nil)
	a.json(http.MethodPut, vpath+"/max-queues", map[string]any{"value": 0}, http.StatusNoContent, nil)
	var vl []map[string]any
	a.json(http.MethodGet, vpath, nil, http.StatusOK, &vl)
	if len(vl) != 1 || vl[0]["vhost"] != vh {
		t.Fatalf("GET %s = %v", vpath, vl)
	}
	if v, _ := vl[0]["value"].(map[string]any); v["max-connections"] != 10.0 || v["max-queues"] != 0.0 {
		t.Errorf("vhost limits = %v, want max-connections 10, max-queues 0", vl[0]["value"])
	}
	var all []map[string]any
	a.json(http.MethodGet, "/api/vhost-limits", nil, http.StatusOK, &all)
	found := false
	for _, l := range all {
		found = found || l["vhost"] == vh
	}
	if !found {
		t.Errorf("/api/vhost-limits lacks %s: %v", vh, all)
	}
	wantReason(t, a, http.MethodPut, vpath+"/max-foo", map[string]any{"value": 1}, http.StatusBadRequest,
		`Unrecognised terms [{<<"max-foo">>,1}] in limits`)
	wantReason(t, a, http.MethodPut, vpath+"/max-queues", map[string]any{"valu": 1}, http.StatusBadRequest, "[{key_missing,value}]")
	wantReason(t, a, http.MethodPut, vpath+"/max-queues", map[string]any{"value": "x"}, http.StatusBadRequest,
		`max-queues should be a number, actually was <<"x">>`)
	if code, body := a.do(http.MethodPut, "/api/vhost-limits/"+esc(uniqueName(t, "novhost"))+"/max-queues", map[string]any{"value": 1}); code != http.StatusNotFound {
		t.Errorf("PUT a limit on a vhost that does not exist: %d %s, want 404", code, body)
	}

	a.json(http.MethodPut, upath+"/max-connections", map[string]any{"value": 1}, http.StatusNoContent, nil)
	a.json(http.MethodPut, upath+"/max-channels", map[string]any{"value": -1}, http.StatusNoContent, nil)
	var ul []map[string]any
	a.json(http.MethodGet, upath, nil, http.StatusOK, &ul)
	if len(ul) != 1 || ul[0]["user"] != user {
		t.Fatalf("GET %s = %v", upath, ul)
	}
	if v, _ := ul[0]["value"].(map[string]any); v["max-connections"] != 1.0 || v["max-channels"] != -1.0 {
		t.Errorf("user limits = %v", ul[0]["value"])
	}
	var u map[string]any
	a.json(http.MethodGet, "/api/users/"+esc(user), nil, http.StatusOK, &u)
	if l, _ := u["limits"].(map[string]any); l["max-connections"] != 1.0 {
		t.Errorf("the user's limits = %v, want max-connections 1", u["limits"])
	}
	wantReason(t, a, http.MethodPut, upath+"/max-queues", map[string]any{"value": 1}, http.StatusBadRequest,
		`Unrecognised terms [{<<"max-queues">>,1}] in user-limits`)
	wantReason(t, a, http.MethodPut, upath+"/max-channels", map[string]any{"value": 1.5}, http.StatusBadRequest,
		`max-channels should be a number, actually was 1.5`)
	code, body := a.do(http.MethodPut, "/api/user-limits/"+esc(uniqueName(t, "nouser"))+"/max-channels", map[string]any{"value": 1})
	if code != http.StatusBadRequest {
		t.Errorf("PUT a limit on a user that does not exist: %d %s, want 400 no_such_user", code, body)
	}

	// The definitions export carries both: user limits on the user, vhost limits as runtime
	// parameters of the vhost-limits component.
	var defs struct {
		Users []struct {
			Name   string           `json:"name"`
			Limits map[string]int64 `json:"limits"`
		} `json:"users"`
		Parameters []struct {
			Vhost     string          `json:"vhost"`
			Component string          `json:"component"`
			Name      string          `json:"name"`
			Value     json.RawMessage `json:"value"` // RabbitMQ writes a cleared one as []
		} `json:"parameters"`
	}
	a.json(http.MethodGet, "/api/definitions", nil, http.StatusOK, &defs)
	userOK, vhostOK := false, false
	for _, u := range defs.Users {
		userOK = userOK || u.Name == user && u.Limits["max-connections"] == 1 && u.Limits["max-channels"] == -1
	}
	for _, p := range defs.Parameters {
		var v map[string]int64
		if p.Vhost == vh && p.Component == "vhost-limits" && p.Name == "limits" && json.Unmarshal(p.Value, &v) == nil {
			vhostOK = v["max-connections"] == 10 && v["max-queues"] == 0
		}
	}
	if !userOK || !vhostOK {
		t.Errorf("definitions export: user limits found %v, vhost limits found %v: %+v", userOK, vhostOK, defs)
	}

	a.json(http.MethodDelete, upath+"/max-connections", nil, http.StatusNoContent, nil)
	a.json(http.MethodDelete, upath+"/max-channels", nil, http.StatusNoContent, nil)
	a.json(http.MethodGet, upath, nil, http.StatusOK, &ul)
	if len(ul) != 0 {
		t.Errorf("user limits after deleting both = %v, want []", ul)
	}
	a.json(http.MethodDelete, vpath+"/max-connections", nil, http.StatusNoContent, nil)
	a.json(http.MethodDelete, vpath+"/max-queues", nil, http.StatusNoContent, nil)
}

// A vhost's max-connections refuses connection.open beyond it with 530 and RabbitMQ's text.
func TestVhostMaxConnections(t *testing.T) {
	a := mgmtAPI(t)
	vh := limitVhost(t, a)
	a.json(http.MethodPut, "/api/vhost-limits/"+esc(vh)+"/max-connections", map[string]any{"value": 1}, http.StatusNoContent, nil)
	url := amqpURLAs(t, "guest", "guest", vh)
	first := dialConfig(t, url, amqp.Config{})
	wantDialRefused(t, url, amqp.NotAllowed,
		"NOT_ALLOWED - access to vhost '"+vh+"' refused for user 'guest': connection limit (1) is reached")
	_ = first.Close()
	a.json(http.MethodPut, "/api/vhost-limits/"+esc(vh)+"/max-connections", map[string]any{"value": 0}, http.StatusNoContent, nil)
	wantDialRefused(t, url, amqp.NotAllowed,
		"NOT_ALLOWED - access to vhost '"+vh+"' refused for user 'guest': connection limit (0) is reached")
	a.json(http.MethodPut, "/api/vhost-limits/"+esc(vh)+"/max-connections", map[string]any{"value": -1}, http.StatusNoContent, nil)
	dialConfig(t, url, amqp.Config{})
	dialConfig(t, url, amqp.Config{})
}

// A vhost's max-queues refuses queue.declare beyond it with 406 and RabbitMQ's text; a
// redeclare of an existing queue is not counted.
func TestVhostMaxQueues(t *testing.T) {
	a := mgmtAPI(t)
	vh := limitVhost(t, a)
	a.json(http.MethodPut, "/api/vhost-limits/"+esc(vh)+"/max-queues", map[string]any{"value": 1}, http.StatusNoContent, nil)
	conn := dialConfig(t, amqpURLAs(t, "guest", "guest", vh), amqp.Config{})
	ch := channel(t, conn)
	if _, err := ch.QueueDeclare("one", false, true, false, false, nil); err != nil {
		t.Fatalf("first queue: %v", err)
	}
	if _, err := ch.QueueDeclare("one", false, true, false, false, nil); err != nil {
		t.Fatalf("redeclaring the first queue: %v", err)
	}
	_, err := ch.QueueDeclare("two", false, true, false, false, nil)
	wantError(t, err, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - cannot declare queue 'two': queue limit in vhost '"+vh+"' (1) is reached")
	ch = channel(t, conn)
	if _, err := ch.QueueDelete("one", false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("two", false, true, false, false, nil); err != nil {
		t.Fatalf("a queue after the first was deleted: %v", err)
	}
}

// A user's max-connections and max-channels refuse beyond them with 530 and RabbitMQ's texts.
func TestUserLimits(t *testing.T) {
	a := mgmtAPI(t)
	vh := limitVhost(t, a)
	user := limitUser(t, a, vh)
	upath := "/api/user-limits/" + esc(user)
	a.json(http.MethodPut, upath+"/max-connections", map[string]any{"value": 1}, http.StatusNoContent, nil)
	a.json(http.MethodPut, upath+"/max-channels", map[string]any{"value": 1}, http.StatusNoContent, nil)
	url := amqpURLAs(t, user, "pw", vh)
	conn := dialConfig(t, url, amqp.Config{})
	wantDialRefused(t, url, amqp.NotAllowed,
		"NOT_ALLOWED - connection refused for user '"+user+"': user connection limit (1) is reached")

	closed := notifyConnClose(conn)
	channel(t, conn)
	if _, err := conn.Channel(); err == nil {
		t.Fatal("a second channel opened over max-channels 1")
	}
	wantClosed(t, closed, amqp.NotAllowed,
		"NOT_ALLOWED - number of channels opened for user '"+user+"' has reached the maximum allowed user limit of (1)")
}
