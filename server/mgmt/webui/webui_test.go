package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrenmq/warren/server/mgmt/webui"
)

// Handler sends /api and everything under /api/ to the API untouched (escaped vhost
// included), serves the app everywhere else with a policy that loads nothing from elsewhere,
// and neither lists directories nor accepts writes.
func TestHandlerRoutes(t *testing.T) {
	var apiPaths []string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiPaths = append(apiPaths, r.Method+" "+r.URL.EscapedPath())
		w.WriteHeader(http.StatusTeapot)
	})
	h := webui.Handler(api)
	get := func(method, path string) *http.Response {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Result()
	}
	for _, p := range []string{"/api", "/api/", "/api/queues/%2F/q", "/api/nope"} {
		if r := get(http.MethodDelete, p); r.StatusCode != http.StatusTeapot {
			t.Errorf("DELETE %s: %d, want the API's answer", p, r.StatusCode)
		}
	}
	if want := "DELETE /api/queues/%2F/q"; apiPaths[2] != want {
		t.Errorf("the API got %q, want %q", apiPaths[2], want)
	}

	r := get(http.MethodGet, "/")
	body, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(body), `<script type="module" src="js/app.js">`) {
		t.Fatalf("GET /: %d %.200s, want the app's index.html", r.StatusCode, body)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("GET /: Content-Security-Policy %q, want default-src 'self'", csp)
	}
	for path, ctype := range map[string]string{"/js/app.js": "text/javascript", "/js/pages/queue.js": "text/javascript", "/app.css": "text/css"} {
		r := get(http.MethodGet, path)
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, r.StatusCode, r.Header.Get("Content-Type"), ctype)
		}
	}
	for _, p := range []string{"/js/", "/js/pages/", "/missing.js"} {
		if r := get(http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(http.MethodPost, "/"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q, want 405 GET, HEAD", r.StatusCode, r.Header.Get("Allow"))
	}
}
