package metrics

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// textContentType is the only format served, as rabbitmq_prometheus 3.10.
const textContentType = "text/plain; version=0.0.4; charset=utf-8"

// Registries RabbitMQ serves under /metrics/[registry].
const (
	regDefault   = ""
	regPerObject = "per-object"
	regDetailed  = "detailed"
)

type handler struct {
	src     Source
	id      Identity
	log     zerolog.Logger
	agg     http.Handler
	refused refusalLog
}

// refusalLog logs requests the endpoints refuse (an unknown registry, a method, a format): the
// first at once, then at most one line a minute, counting those in between, so a misconfigured
// or hostile scraper cannot flood the log.
type refusalLog struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// refusalLogEvery is how often refusals are logged at most.
const refusalLogEvery = time.Minute

func (l *refusalLog) note(log zerolog.Logger, r *http.Request, status int, reason string) {
	now := time.Now()
	l.mu.Lock()
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogEvery {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	log.Warn().Str("remote", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
		Int("status", status).Str("reason", reason).Int("refused_since_last_line", skipped).
		Msg("Prometheus request refused (further refusals are logged at most once a minute)")
}

// Handler serves RabbitMQ's Prometheus endpoints for src: /metrics (aggregated),
// /metrics/per-object and /metrics/detailed. Another /metrics/{registry} is 404 "Unknown
// Registry", other paths 404; methods other than GET and HEAD are 405; a request that does
// not accept text/plain is 406; gzip when the client asks.
func Handler(src Source, id Identity, log zerolog.Logger) http.Handler {
	id = id.withDefaults()
	log = log.With().Str("component", "metrics").Logger()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src, id, log))
	agg := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return &handler{src: src, id: id, log: log, agg: agg}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/metrics")
	if ok && rest != "" {
		rest, ok = strings.CutPrefix(rest, "/")
	}
	if !ok || strings.Contains(rest, "/") {
		h.refused.note(h.log, r, http.StatusNotFound, "no such path")
		http.NotFound(w, r)
		return
	}
	if rest != regDefault && rest != regPerObject && rest != regDetailed {
		h.refused.note(h.log, r, http.StatusNotFound, "unknown registry")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "Unknown Registry")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.refused.note(h.log, r, http.StatusMethodNotAllowed, "method not allowed")
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if !acceptsText(r.Header.Values("Accept")) {
		h.refused.note(h.log, r, http.StatusNotAcceptable, "Accept has no text/plain: "+r.Header.Get("Accept"))
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	if rest == regDefault {
		// client_golang would answer a protobuf or OpenMetrics Accept in kind; RabbitMQ
		// serves text only.
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/plain")
		h.agg.ServeHTTP(w, r)
		return
	}
	h.stream(w, r, rest)
}

// stream writes the per-object or detailed registry, gzipped when the client asks.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, registry string) {
	w.Header().Set("Content-Type", textContentType)
	w.Header().Set("Vary", "Accept-Encoding")
	var out io.Writer = w
	var gz *gzip.Writer
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
		out = gz
	}
	if r.Method == http.MethodHead {
		return
	}
	s := takeSnapshot(h.src)
	t := newTextWriter(out)
	if registry == regPerObject {
		writePerObject(t, h.id, s)
	} else {
		writeDetailed(t, h.id, s, parseDetailed(r.URL.Query()))
	}
	err := t.flush()
	if gz != nil && err == nil {
		err = gz.Close()
	}
	if err != nil {
		// The scraper went away or timed out: nothing to answer.
		h.log.Debug().Err(fmt.Errorf("write /metrics/%s: %w", registry, err)).Msg("scrape not delivered")
	}
}

// writePerObject writes every metric per object: the node-wide ones that have no object,
// then queues, channels and connections.
func writePerObject(t *textWriter, id Identity, s *snapshot) {
	const prefix = "rabbitmq_"
	all := func(table string) bool {
		return table != tableQueueConsumer // a /metrics/detailed table only
	}
	writeNode(t, id, s.node, prefix, func(f *family) bool { return f.on&onPerObject != 0 }, true)
	writeObjects(t, prefix, queueFamilies(), all, queueLabels, s.queueRows(nil))
	writeObjects(t, prefix, channelFamilies(), all, channelLabels, s.channelRows())
	writeObjects(t, prefix, connectionFamilies(), all, connectionLabels, s.connectionRows())
	writeObjects(t, prefix, raftFamilies(), all, queueLabels, s.raftRows())
	writeObjects(t, "", memberFamilies(), all, memberLabels, s.memberRows())
}

// acceptsText says whether an Accept header takes text/plain: absent, or a text/plain,
// text/* or */* range with a non-zero q.
func acceptsText(accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, h := range accept {
		for _, rng := range strings.Split(h, ",") {
			mt, params, _ := strings.Cut(rng, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "text/plain", "text/*", "*/*":
				if qValue(params) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// acceptsGzip says whether an Accept-Encoding header takes gzip.
func acceptsGzip(enc []string) bool {
	for _, h := range enc {
		for _, c := range strings.Split(h, ",") {
			name, params, _ := strings.Cut(c, ";")
			if n := strings.ToLower(strings.TrimSpace(name)); (n == "gzip" || n == "*") && qValue(params) > 0 {
				return true
			}
		}
	}
	return false
}

// qValue is a media range's q parameter, 1 when absent or unreadable.
func qValue(params string) float64 {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return q
			}
		}
	}
	return 1
}
