package mgmt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
)

// Request bodies and errors of the endpoints that change things, as rabbit_mgmt_util decodes
// and reports them.

// maxBody bounds a request body: a published message or a definitions-sized object.
const maxBody = 64 << 20

// badRequest is a 400 whose reason is RabbitMQ's: a text, or the JSON form of an Erlang
// term such as ["not_boolean","troo"].
type badRequest struct{ reason any }

func (e *badRequest) Error() string { return fmt.Sprint(e.reason) }

func bad(reason any) error { return &badRequest{reason} }

// decodeBody reads a JSON object body: empty and null are {}, a string is RabbitMQ's
// "doubly-JSON-encoded" 400, anything else that is not an object is not_json.
func decodeBody(r *http.Request) (map[string]any, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, bad("not_json")
	}
	if len(raw) > maxBody {
		return nil, bad("request body too large")
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return map[string]any{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return nil, bad("not_json")
	}
	switch x := v.(type) {
	case nil:
		return map[string]any{}, nil
	case string:
		return nil, bad("invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?")
	case map[string]any:
		return x, nil
	default:
		return nil, bad("not_json")
	}
}

// boolField is a boolean key that may be a JSON boolean or "true"/"false" (rabbitmqadmin
// sends strings); absent is def.
func boolField(body map[string]any, key string, def bool) (bool, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch x {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, bad([]any{"not_boolean", x})
	}
	return false, bad([]any{"not_boolean", fmt.Sprint(v)})
}

// stringField is a string key; absent is def.
func stringField(body map[string]any, key, def string) (string, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return def, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", bad([]any{"not_string", key})
	}
	return s, nil
}

// argsField is the "arguments" object as an AMQP table.
func argsField(body map[string]any, key string) (amqpwire.Table, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		if s, isString := v.(string); isString && s == "" {
			return nil, nil // rabbitmqadmin's empty arguments
		}
		return nil, bad([]any{"not_object", key})
	}
	t, err := amqpwire.NewTable(tableValue(m).(map[string]any))
	if err != nil {
		return nil, bad(fmt.Sprintf("invalid %s: %v", key, err))
	}
	return t, nil
}

// tableValue turns decoded JSON into AMQP field values: integers as long, other numbers as
// double, objects as tables, arrays as arrays, as rabbit_mgmt_format:to_amqp_table does.
func tableValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = tableValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = tableValue(e)
		}
		return out
	}
	return v
}

// intField is an integer key given as a number or a numeric string (rabbitmqadmin sends
// "1"); ok is false when absent.
func intField(body map[string]any, key string) (n int64, ok bool, err error) {
	v, present := body[key]
	if !present || v == nil {
		return 0, false, nil
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, true, nil
		}
		return 0, true, bad([]any{"not_integer", x.String()})
	case string:
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return i, true, nil
		}
		return 0, true, bad([]any{"not_integer", x})
	}
	return 0, true, bad([]any{"not_integer", fmt.Sprint(v)})
}

// requireKeys is rabbit_mgmt_util:with_decode's check: every key present, else
// "[{key_missing,k}]" for the first missing one.
func requireKeys(body map[string]any, keys ...string) error {
	for _, k := range keys {
		if _, ok := body[k]; !ok {
			return bad("[{key_missing," + k + "}]")
		}
	}
	return nil
}

// refusalLog logs refused requests: the first refusalBurst of each minute one by one; the
// first refusal after a minute in which some were left out logs how many.
type refusalLog struct {
	log     zerolog.Logger
	mu      sync.Mutex
	window  time.Time
	logged  int
	dropped int
}

const refusalBurst = 10

// note logs one refusal with write, unless the minute's burst is spent.
func (l *refusalLog) note(now time.Time, write func(*zerolog.Logger)) {
	l.mu.Lock()
	var dropped int
	if now.Sub(l.window) >= time.Minute {
		dropped = l.dropped
		l.window, l.logged, l.dropped = now, 0, 0
	}
	ok := l.logged < refusalBurst
	if ok {
		l.logged++
	} else {
		l.dropped++
	}
	l.mu.Unlock()
	if dropped > 0 {
		l.log.Warn().Int("refused", dropped).Dur("within", time.Minute).
			Msg("management requests refused and not logged one by one (more than 10 a minute)")
	}
	if ok {
		write(&l.log)
	}
}

// errStyle says how an AMQP error becomes an HTTP one: topology changes run as direct
// requests (the explanation only), get and publish over an internal channel (the code too).
type errStyle int

const (
	direct       errStyle = iota // declare, delete, bind: 404 not_found / 401 / 400 with the explanation
	channel                      // get: 404 with "NOT_FOUND - ...", others 400 "code TEXT - ..."
	publishStyle                 // publish: every AMQP error is 400 "code TEXT - ..." (the channel closes after the publish)
)

// writeFailure answers err as RabbitMQ's management API answers the same failure, and logs it.
func (a *api) writeFailure(w http.ResponseWriter, r *http.Request, u user, err error, style errStyle) {
	status, kind, reason := failure(err, style)
	a.refusals.note(time.Now(), func(l *zerolog.Logger) {
		l.Info().Str("user", u.name).Str("method", r.Method).Str("path", r.URL.EscapedPath()).
			Int("status", status).Interface("reason", reason).Msg("management request refused")
	})
	if status == http.StatusNotFound && kind == "" {
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": kind, "reason": reason})
}

// failure is the status, error kind and reason of err.
func failure(err error, style errStyle) (int, string, any) {
	var br *badRequest
	var chErr *amqpwire.ChannelError
	var connErr *amqpwire.ConnectionError
	var nq *server.NoQuorumError
	code, text := uint16(0), ""
	switch {
	case errors.As(err, &nq):
		return http.StatusServiceUnavailable, "no_quorum", nq.Text
	case errors.As(err, &br):
		return http.StatusBadRequest, "bad_request", br.reason
	case errors.Is(err, server.ErrVhostNotFound):
		return http.StatusNotFound, "not_found", "vhost_not_found"
	case errors.Is(err, server.ErrNotFound):
		return http.StatusNotFound, "", nil
	case errors.As(err, &chErr):
		code, text = chErr.Code, chErr.Text
	case errors.As(err, &connErr):
		code, text = connErr.Code, connErr.Text
	default:
		return http.StatusInternalServerError, "internal_error", err.Error()
	}
	explanation := text
	if name := amqpwire.ReplyName(code); name != "" {
		explanation = strings.TrimPrefix(text, name+" - ")
	}
	switch {
	case code == amqpwire.CodeAccessRefused && style == direct:
		return http.StatusUnauthorized, "not_authorised", "Access refused."
	case code == amqpwire.CodeAccessRefused && style == channel:
		return http.StatusUnauthorized, "not_authorised", text
	case code == amqpwire.CodeNotFound && style == direct:
		return http.StatusNotFound, "not_found", explanation
	case code == amqpwire.CodeNotFound && style == channel:
		return http.StatusNotFound, "not_found", text
	case style == direct:
		return http.StatusBadRequest, "bad_request", explanation
	}
	return http.StatusBadRequest, "bad_request", fmt.Sprintf("%d %s", code, text)
}

// vhostAllowed is rabbit_mgmt_util:is_authorized_vhost: administrators, and users with
// permissions in vh, may act in it; a vhost that does not exist passes (404 follows).
func (a *api) vhostAllowed(w http.ResponseWriter, u user, vh string) bool {
	if u.isAdmin() || a.findVhost(vh) == nil || a.src.HasVhostAccess(u.name, vh) {
		return true
	}
	writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access virtual host")
	return false
}

// writeStatus answers a change with no body: 201 when created, else 204.
func writeStatus(w http.ResponseWriter, created bool) {
	if created {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// exchangeName maps the API's name of the default exchange, amq.default, to "".
func exchangeName(name string) string {
	if name == "amq.default" {
		return ""
	}
	return name
}
