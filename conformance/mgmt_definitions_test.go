package conformance

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/configs"
)

// GET /api/definitions has RabbitMQ's keys; POST imports RabbitMQ's JSON (as rabbitmqadmin
// import sends it, and as the UI's multipart upload), creating what it names.
func TestMgmtDefinitionsImportExport(t *testing.T) {
	a := mgmtAPI(t)
	var defs map[string]json.RawMessage
	a.json(http.MethodGet, "/api/definitions", nil, http.StatusOK, &defs)
	for _, k := range []string{"rabbit_version", "rabbitmq_version", "product_name", "product_version", "users", "vhosts",
		"permissions", "topic_permissions", "parameters", "global_parameters", "policies", "queues", "exchanges", "bindings"} {
		if _, ok := defs[k]; !ok {
			t.Errorf("GET /api/definitions lacks %q", k)
		}
	}
	var one map[string]json.RawMessage
	a.json(http.MethodGet, "/api/definitions/%2F", nil, http.StatusOK, &one)
	for _, k := range []string{"rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"} {
		if _, ok := one[k]; !ok {
			t.Errorf("GET /api/definitions/%%2F lacks %q", k)
		}
	}
	if _, ok := one["users"]; ok {
		t.Error("GET /api/definitions/%2F has users")
	}
	wantReason(t, a, http.MethodGet, "/api/definitions/"+esc(uniqueName(t, "novhost")), nil, http.StatusBadRequest, "vhost_not_found")

	user, vh, q, x := uniqueName(t, "user"), uniqueName(t, "vhost"), uniqueName(t, "q"), uniqueName(t, "x")
	deleteUserLater(t, a, user)
	t.Cleanup(func() { a.do(http.MethodDelete, "/api/vhosts/"+esc(vh), nil) })
	hash, err := configs.HashPassword("pw", "")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{
		"rabbit_version": "3.10.8",
		"users":          []any{map[string]any{"name": user, "password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "management", "limits": map[string]any{}}},
		"vhosts":         []any{map[string]any{"name": vh}},
		"permissions":    []any{map[string]any{"user": user, "vhost": vh, "configure": ".*", "write": ".*", "read": ".*"}},
		"policies":       []any{map[string]any{"vhost": vh, "name": "p", "pattern": "^q", "apply-to": "queues", "definition": map[string]any{"max-length": 10}, "priority": 1}},
		"exchanges":      []any{map[string]any{"name": x, "vhost": vh, "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": map[string]any{}}},
		"queues":         []any{map[string]any{"name": q, "vhost": vh, "durable": true, "auto_delete": false, "arguments": map[string]any{"x-message-ttl": 60000}}},
		"bindings":       []any{map[string]any{"source": x, "vhost": vh, "destination": q, "destination_type": "queue", "routing_key": "k.#", "arguments": map[string]any{}}},
	}
	a.json(http.MethodPost, "/api/definitions", doc, http.StatusNoContent, nil)

	var perms []map[string]any
	a.json(http.MethodGet, "/api/vhosts/"+esc(vh)+"/permissions", nil, http.StatusOK, &perms)
	if !slices.ContainsFunc(perms, func(m map[string]any) bool { return m["user"] == user }) {
		t.Errorf("the imported permission is missing: %v", perms)
	}
	var pol map[string]any
	a.json(http.MethodGet, "/api/policies/"+esc(vh)+"/p", nil, http.StatusOK, &pol)
	ch := channel(t, dialConfig(t, amqpURLAs(t, "guest", "guest", vh), amqp.Config{}))
	if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
		t.Fatalf("the imported queue: %v", err)
	}
	if err := ch.ExchangeDeclarePassive(x, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("the imported exchange: %v", err)
	}
	var exported struct{ Bindings, Policies []map[string]any }
	a.json(http.MethodGet, "/api/definitions/"+esc(vh), nil, http.StatusOK, &exported)
	if !slices.ContainsFunc(exported.Bindings, func(m map[string]any) bool {
		_, hasVhost := m["vhost"]
		return m["routing_key"] == "k.#" && m["destination"] == q && !hasVhost
	}) {
		t.Errorf("the imported binding is not exported without its vhost: %v", exported.Bindings)
	}
	// RabbitMQ 3.10 keeps the vhost key in a vhost's export of policies (only there).
	if len(exported.Policies) != 1 || exported.Policies[0]["vhost"] != vh || exported.Policies[0]["name"] != "p" {
		t.Errorf("the vhost's exported policies = %v", exported.Policies)
	}

	// The UI uploads the file as multipart/form-data, field "file".
	user2 := uniqueName(t, "user")
	deleteUserLater(t, a, user2)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var fw io.Writer
	fw, err = mw.CreateFormFile("file", "defs.json")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewEncoder(fw).Encode(map[string]any{"users": []any{map[string]any{"name": user2, "password_hash": "", "tags": ""}}})
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, mgmtURL+"/api/definitions", &body)
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("multipart import: %d %s", resp.StatusCode, out)
	}
	a.json(http.MethodGet, "/api/users/"+esc(user2), nil, http.StatusOK, nil)

	// Not JSON: 400 failed_to_parse_json; another content type: 415.
	req, _ = http.NewRequest(http.MethodPost, mgmtURL+"/api/definitions", bytes.NewReader([]byte("xx")))
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(out, []byte("failed_to_parse_json")) {
		t.Errorf("import of non-JSON: %d %s", resp.StatusCode, out)
	}
	req, _ = http.NewRequest(http.MethodPost, mgmtURL+"/api/definitions", bytes.NewReader([]byte("{}")))
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "text/plain")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("import as text/plain: %d, want 415", resp.StatusCode)
	}
}
