package mgmt_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/server/servertest"
)

// FuzzAPI sends arbitrary requests (method, path with query, body, content type) to the
// management API as guest from loopback: whatever they say, the API answers with a status a
// client can act on, never a panic or a 500 (503 is a failed health check).
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct{ method, path, body, ctype string }{
		{"GET", "/api/overview", "", ""},
		{"GET", "/api/queues?page=1&page_size=2&name=a&use_regex=true&sort=message_stats.publish_details.rate&sort_reverse=true&columns=name,messages", "", ""},
		{"GET", "/api/queues?page=0", "", ""},
		{"GET", "/api/queues?name=(&use_regex=true&page=1", "", ""},
		{"PUT", "/api/queues/%2F/q", `{"durable":true,"arguments":{"x-max-length":1,"x-overflow":"reject-publish"}}`, "application/json"},
		{"PUT", "/api/queues/%2F/q", `{"durable":"troo"}`, "application/json"},
		{"PUT", "/api/exchanges/%2F/x", `{"type":"topic","arguments":{"alternate-exchange":"y"}}`, "application/json"},
		{"POST", "/api/bindings/%2F/e/x/q/q", `{"routing_key":"a.#","arguments":{"x-match":"all"}}`, "application/json"},
		{"DELETE", "/api/bindings/%2F/e/x/q/q/a.%23~AAAAAA", "", ""},
		{"GET", "/api/bindings/%2F/e/x/q/q/~~~", "", ""},
		{"POST", "/api/exchanges/%2F/amq.default/publish", `{"routing_key":"q","properties":{"headers":{"a":[1,{"b":null}]}},"payload":"aGk=","payload_encoding":"base64"}`, "application/json"},
		{"POST", "/api/queues/%2F/q/get", `{"count":5,"ackmode":"reject_requeue_true","encoding":"auto","truncate":1}`, "application/json"},
		{"POST", "/api/queues/%2F/q/redrive", `{"count":-1}`, "application/json"},
		{"DELETE", "/api/queues/%2F/q/contents", "", ""},
		{"PUT", "/api/users/u", `{"password":"p","tags":"management,administrator"}`, "application/json"},
		{"PUT", "/api/permissions/%2F/u", `{"configure":"^amq\\.gen.*","write":".*","read":"(a|b"}`, "application/json"},
		{"PUT", "/api/policies/%2F/p", `{"pattern":"^q$","definition":{"max-length":"x"},"priority":"1","apply-to":"queues"}`, "application/json"},
		{"PUT", "/api/vhosts/v", `{"description":"d","tags":["a"]}`, "application/json"},
		{"POST", "/api/definitions", `{"queues":[{"name":"d","vhost":"/","durable":true,"arguments":{}}],"users":[{"name":"x","password_hash":"%%%","tags":""}]}`, "application/json"},
		{"POST", "/api/definitions", "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n{}\r\n--b--\r\n", "multipart/form-data; boundary=b"},
		{"GET", "/api/health/checks/certificate-expiration/-1/weeks", "", ""},
		{"GET", "/api/health/checks/port-listener/99999999999", "", ""},
		{"DELETE", "/api/connections/nope", "", ""},
		{"PUT", "/api/cluster-name", `{"name":""}`, "application/json"},
		{"GET", "/api/%zz", "", ""},
		{"GET", "/index.html", "", ""},
	} {
		f.Add(seed.method, seed.path, seed.body, seed.ctype)
	}
	srv := servertest.New(f, server.Config{MemoryLimit: 1 << 40})
	h := mgmt.Handler(f.Context(), srv, mgmt.Identity{Node: "warren@fuzz"}, zerolog.Nop())
	f.Fuzz(func(t *testing.T, method, path, body, ctype string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(method, " \t\r\n") || method == "" {
			return // not a request a client could send
		}
		req, err := http.NewRequest(method, "http://127.0.0.1:15672"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "127.0.0.1:40000"
		req.SetBasicAuth("guest", "guest")
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body.String())
		}
	})
}
