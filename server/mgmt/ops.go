package mgmt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/queue"
)

// opsSource is what the operations endpoints (queue contents, get, publish, health checks)
// need from the broker. Each call acts as the named user, with the permission checks and
// queue calls of the AMQP method it stands for.
type opsSource interface {
	PurgeAs(user, vhost, name string) (int, error)
	GetAs(user, vhost, name string, count int, mode server.GetMode) ([]server.GotMessage, error)
	PublishAs(user, vhost string, msg *queue.Message) (routed bool, err error)
	healthSource
	redriveSource
}

// opsEndpoints are the endpoints that act on queue contents and check the broker's health.
func (a *api) opsEndpoints() []endpoint {
	return append([]endpoint{
		{http.MethodDelete, "queues/{}/{}/contents", a.purge},
		{http.MethodPost, "queues/{}/{}/get", a.get},
		{http.MethodPost, "exchanges/{}/{}/publish", a.publish},
		{http.MethodPost, "queues/{}/{}/redrive", a.redrive},
	}, a.healthEndpoints()...)
}

// purge is DELETE /api/queues/{vhost}/{name}/contents: queue.purge.
func (a *api) purge(w http.ResponseWriter, r *http.Request, u user, args []string) {
	if !a.vhostAllowed(w, u, args[0]) {
		return
	}
	if _, err := a.src.PurgeAs(u.name, args[0], args[1]); err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ackModes are the get endpoint's ackmode values.
var ackModes = map[string]server.GetMode{
	"ack_requeue_true":     server.GetRequeue,
	"ack_requeue_false":    server.GetAck,
	"reject_requeue_true":  server.GetRejectRequeue,
	"reject_requeue_false": server.GetReject,
}

// gotJSON is one message of a get's answer, RabbitMQ's fields in its order.
type gotJSON struct {
	PayloadBytes    int             `json:"payload_bytes"`
	Redelivered     bool            `json:"redelivered"`
	Exchange        string          `json:"exchange"`
	RoutingKey      string          `json:"routing_key"`
	MessageCount    int             `json:"message_count"`
	Properties      json.RawMessage `json:"properties"`
	Payload         string          `json:"payload"`
	PayloadEncoding string          `json:"payload_encoding"`
}

// get is POST /api/queues/{vhost}/{name}/get: up to count basic.gets, settled as ackmode
// says, each payload truncated to truncate bytes and given as a string when encoding is auto
// and it is UTF-8, else in base64.
func (a *api) get(w http.ResponseWriter, r *http.Request, u user, args []string) {
	if !a.vhostAllowed(w, u, args[0]) {
		return
	}
	count, mode, base64Only, truncate, err := getRequest(r)
	if err != nil {
		a.writeFailure(w, r, u, err, channel)
		return
	}
	msgs, err := a.src.GetAs(u.name, args[0], args[1], count, mode)
	if err != nil {
		a.writeFailure(w, r, u, err, channel)
		return
	}
	out := make([]gotJSON, 0, len(msgs))
	for _, m := range msgs {
		payload := m.Body
		if truncate >= 0 && len(payload) > truncate {
			payload = payload[:truncate]
		}
		g := gotJSON{PayloadBytes: len(m.Body), Redelivered: m.Redelivered, Exchange: m.Exchange, RoutingKey: m.RoutingKey,
			MessageCount: m.Remaining, Properties: propertiesJSON(m.Properties)}
		if !base64Only && utf8.Valid(payload) {
			g.Payload, g.PayloadEncoding = string(payload), "string"
		} else {
			g.Payload, g.PayloadEncoding = base64.StdEncoding.EncodeToString(payload), "base64"
		}
		out = append(out, g)
	}
	writeJSON(w, out)
}

// getRequest reads a get's body; truncate is -1 when absent.
func getRequest(r *http.Request) (count int, mode server.GetMode, base64Only bool, truncate int, err error) {
	body, err := decodeBody(r)
	if err != nil {
		return 0, 0, false, 0, err
	}
	if err := requireKeys(body, "count", "ackmode", "encoding"); err != nil {
		return 0, 0, false, 0, err
	}
	n, _, err := intField(body, "count")
	if err != nil {
		return 0, 0, false, 0, err
	}
	ack, _ := body["ackmode"].(string)
	mode, known := ackModes[ack]
	if !known {
		return 0, 0, false, 0, bad("Unsupported ackmode. Please use ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false.")
	}
	switch enc, _ := body["encoding"].(string); enc {
	case "auto":
	case "base64":
		base64Only = true
	default:
		return 0, 0, false, 0, bad("Unsupported encoding. Please use auto or base64.")
	}
	t, present, err := intField(body, "truncate")
	if err != nil {
		return 0, 0, false, 0, err
	}
	if !present || t < 0 {
		t = -1
	}
	return int(min(n, 1<<20)), mode, base64Only, int(min(t, 1<<40)), nil
}

// propertiesJSON is the properties that are set, as rabbit_mgmt_format:basic_properties
// writes them; none at all is [] (RabbitMQ's empty proplist).
func propertiesJSON(p amqpwire.Properties) json.RawMessage {
	m := map[string]any{}
	str := func(flag uint16, key, v string) {
		if p.Flags&flag != 0 {
			m[key] = v
		}
	}
	str(amqpwire.FlagContentType, "content_type", p.ContentType)
	str(amqpwire.FlagContentEncoding, "content_encoding", p.ContentEncoding)
	str(amqpwire.FlagCorrelationID, "correlation_id", p.CorrelationID)
	str(amqpwire.FlagReplyTo, "reply_to", p.ReplyTo)
	str(amqpwire.FlagExpiration, "expiration", p.Expiration)
	str(amqpwire.FlagMessageID, "message_id", p.MessageID)
	str(amqpwire.FlagType, "type", p.Type)
	str(amqpwire.FlagUserID, "user_id", p.UserID)
	str(amqpwire.FlagAppID, "app_id", p.AppID)
	str(amqpwire.FlagClusterID, "cluster_id", p.ClusterID)
	if p.Flags&amqpwire.FlagHeaders != 0 {
		m["headers"] = tableJSON(p.Headers)
	}
	if p.Flags&amqpwire.FlagDeliveryMode != 0 {
		m["delivery_mode"] = p.DeliveryMode
	}
	if p.Flags&amqpwire.FlagPriority != 0 {
		m["priority"] = p.Priority
	}
	if p.Flags&amqpwire.FlagTimestamp != 0 {
		m["timestamp"] = p.Timestamp
	}
	if len(m) == 0 {
		return json.RawMessage("[]")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage("[]")
	}
	return b
}

// publish is POST /api/exchanges/{vhost}/{name}/publish: a confirmed, mandatory
// basic.publish; {"routed": false} when no queue took the message.
func (a *api) publish(w http.ResponseWriter, r *http.Request, u user, args []string) {
	if !a.vhostAllowed(w, u, args[0]) {
		return
	}
	msg, err := publishRequest(r, exchangeName(args[1]))
	if err != nil {
		a.writeFailure(w, r, u, err, publishStyle)
		return
	}
	routed, err := a.src.PublishAs(u.name, args[0], msg)
	if errors.Is(err, server.ErrPublishRefused) {
		err = bad("rejected Unable to publish message. Check queue limits.")
	}
	if err != nil {
		a.writeFailure(w, r, u, err, publishStyle)
		return
	}
	writeJSON(w, map[string]bool{"routed": routed})
}

// publishRequest reads a publish's body into a message for exchange.
func publishRequest(r *http.Request, exchange string) (*queue.Message, error) {
	body, err := decodeBody(r)
	if err != nil {
		return nil, err
	}
	if err := requireKeys(body, "routing_key", "properties", "payload", "payload_encoding"); err != nil {
		return nil, err
	}
	key, err := stringField(body, "routing_key", "")
	if err != nil {
		return nil, err
	}
	payload, isString := body["payload"].(string)
	if !isString {
		return nil, bad("payload_not_string")
	}
	var raw []byte
	switch enc, _ := body["payload_encoding"].(string); enc {
	case "string":
		raw = []byte(payload)
	case "base64":
		if raw, err = base64.StdEncoding.DecodeString(payload); err != nil {
			return nil, bad([]any{"not_base64", payload})
		}
	default:
		return nil, bad([]any{"unsupported_encoding", body["payload_encoding"]})
	}
	props, err := basicProperties(body["properties"])
	if err != nil {
		return nil, err
	}
	return &queue.Message{Exchange: exchange, RoutingKey: key, Properties: props, Body: raw}, nil
}

// basicProperties reads a publish's properties object, as rabbit_mgmt_format's
// to_basic_properties: strings, the integers delivery_mode, priority and timestamp, and the
// headers object. Unknown keys are ignored.
func basicProperties(v any) (amqpwire.Properties, error) {
	var p amqpwire.Properties
	m, ok := v.(map[string]any)
	if !ok {
		if l, isList := v.([]any); isList && len(l) == 0 {
			return p, nil // [] is how RabbitMQ writes no properties
		}
		return p, bad([]any{"not_object", "properties"})
	}
	strs := []struct {
		key  string
		flag uint16
		dst  *string
	}{
		{"content_type", amqpwire.FlagContentType, &p.ContentType},
		{"content_encoding", amqpwire.FlagContentEncoding, &p.ContentEncoding},
		{"correlation_id", amqpwire.FlagCorrelationID, &p.CorrelationID},
		{"reply_to", amqpwire.FlagReplyTo, &p.ReplyTo},
		{"expiration", amqpwire.FlagExpiration, &p.Expiration},
		{"message_id", amqpwire.FlagMessageID, &p.MessageID},
		{"type", amqpwire.FlagType, &p.Type},
		{"user_id", amqpwire.FlagUserID, &p.UserID},
		{"app_id", amqpwire.FlagAppID, &p.AppID},
		{"cluster_id", amqpwire.FlagClusterID, &p.ClusterID},
	}
	for _, f := range strs {
		x, present := m[f.key]
		if !present {
			continue
		}
		s, isString := x.(string)
		if !isString {
			return p, bad([]any{"not_string", f.key})
		}
		*f.dst = s
		p.Flags |= f.flag
	}
	ints := []struct {
		key  string
		flag uint16
		max  int64
	}{
		{"delivery_mode", amqpwire.FlagDeliveryMode, 255},
		{"priority", amqpwire.FlagPriority, 255},
		{"timestamp", amqpwire.FlagTimestamp, 1<<63 - 1},
	}
	for _, f := range ints {
		x, present := m[f.key]
		if !present {
			continue
		}
		num, isNum := x.(json.Number)
		n, err := num.Int64()
		if !isNum || err != nil || n < 0 || n > f.max {
			return p, bad([]any{"not_int", f.key})
		}
		switch f.key {
		case "delivery_mode":
			p.DeliveryMode = uint8(n)
		case "priority":
			p.Priority = uint8(n)
		default:
			p.Timestamp = uint64(n)
		}
		p.Flags |= f.flag
	}
	if h, present := m["headers"]; present {
		t, err := argsField(map[string]any{"headers": h}, "headers")
		if err != nil {
			return p, err
		}
		p.Headers = t
		p.Flags |= amqpwire.FlagHeaders
	}
	return p, nil
}
