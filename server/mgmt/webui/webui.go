// Package webui is Warren's management web UI: a small single-page app in plain JavaScript
// (ES modules, no framework, no build step) embedded in the binary and served next to the
// management API. It calls the RabbitMQ-shaped API under /api/ with the logged-in user's basic
// auth, as RabbitMQ's own management UI does, so it needs nothing from the broker the API does
// not already offer.
package webui

import (
	"embed"
	"net/http"
	"strings"
)

// static holds the app: index.html, app.css and the ES modules under js/.
//
//go:embed static
var static embed.FS

// Handler serves api for /api and every path under /api/, and the UI for every other path.
func Handler(api http.Handler) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/api" || strings.HasPrefix(p, "/api/") {
			api.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if p != "/" && strings.HasSuffix(p, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// Everything the app loads comes from this listener: no CDN, no inline script.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; "+
			"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = "/static"+p, ""
		r2.URL = &u
		files.ServeHTTP(w, r2)
	})
}
