package conformance

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestPublishGet(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "direct", nil)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "key", x, nil)
	p := newPublisher(t, conn)
	for _, b := range []string{"first", "second", "third"} {
		p.body(x, "key", b)
	}
	for i, want := range []string{"first", "second", "third"} {
		d := get(t, ch, q, false)
		if string(d.Body) != want {
			t.Errorf("get %d: body %q, want %q", i, d.Body, want)
		}
		if d.DeliveryTag != uint64(i+1) {
			t.Errorf("get %d: delivery tag %d, want %d", i, d.DeliveryTag, i+1)
		}
		if d.Redelivered {
			t.Errorf("get %d: redelivered on first delivery", i)
		}
		if d.Exchange != x || d.RoutingKey != "key" {
			t.Errorf("get %d: exchange/key %q/%q, want %q/key", i, d.Exchange, d.RoutingKey, x)
		}
		if d.MessageCount != uint32(2-i) {
			t.Errorf("get %d: message count %d, want %d (messages left)", i, d.MessageCount, 2-i)
		}
		if d.ConsumerTag != "" {
			t.Errorf("get %d: consumer tag %q on a get-ok", i, d.ConsumerTag)
		}
	}
	_, ok, err := ch.Get(q, false)
	if err != nil || ok {
		t.Errorf("get on an empty queue: ok=%v err=%v, want get-empty", ok, err)
	}
	if err := ch.Ack(3, true); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, ch, q, 0)

	// Delivery tags count on across gets on the channel; auto-ack gets take a tag too.
	p.toQueue(q, "auto")
	if d := get(t, ch, q, true); d.DeliveryTag != 4 {
		t.Errorf("auto-ack get: delivery tag %d, want 4", d.DeliveryTag)
	}
}

func TestPublishToMissingExchange(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	other := channel(t, conn)
	closes := notifyClose(ch)
	missing := uniqueName(t, "missing")
	if err := ch.Publish(missing, "k", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, closes, amqp.NotFound, "NOT_FOUND - no exchange '"+missing+"' in vhost '/'")
	if err := other.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil); err != nil {
		t.Errorf("the connection's other channel: %v", err)
	}
}

func TestMandatoryReturn(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	x := declareExchange(t, ch, "topic", nil)
	returns := ch.NotifyReturn(make(chan amqp.Return, 4))
	msg := amqp.Publishing{
		Headers:     amqp.Table{"h": "v"},
		ContentType: "text/plain",
		MessageId:   "id-1",
		Body:        []byte("nobody wants me"),
	}
	if err := ch.Publish(x, "no.route", true, false, msg); err != nil {
		t.Fatal(err)
	}
	r := recv(t, returns, "basic.return")
	if r.ReplyCode != amqp.NoRoute || r.ReplyText != "NO_ROUTE" {
		t.Errorf("return %d %q, want 312 NO_ROUTE", r.ReplyCode, r.ReplyText)
	}
	if r.Exchange != x || r.RoutingKey != "no.route" {
		t.Errorf("return exchange/key %q/%q, want %q/no.route", r.Exchange, r.RoutingKey, x)
	}
	if string(r.Body) != "nobody wants me" || r.ContentType != "text/plain" || r.MessageId != "id-1" || r.Headers["h"] != "v" {
		t.Errorf("returned message changed: %+v", r)
	}

	// Without mandatory an unroutable message is dropped silently; the channel stays open.
	p := newPublisher(t, conn)
	p.publish(x, "no.route", false, amqp.Publishing{Body: []byte("dropped")})
	if r, ok := p.returned(); ok {
		t.Errorf("non-mandatory message returned: %+v", r)
	}
	if err := ch.ExchangeDeclarePassive(x, "topic", false, false, false, false, nil); err != nil {
		t.Errorf("channel after a return: %v", err)
	}
}

// TestImmediate: RabbitMQ does not implement immediate=true and closes the connection with 540.
func TestImmediate(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	closes := notifyConnClose(conn)
	if err := ch.Publish("", uniqueName(t, "q"), false, true, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, closes, amqp.NotImplemented, "NOT_IMPLEMENTED - immediate=true")
}

func TestPropertiesRoundTrip(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	q := declareQueue(t, ch, nil)
	ts := time.Unix(1700000000, 0)
	headers := amqp.Table{
		"int8":     int8(-8),
		"uint8":    uint8(200),
		"int16":    int16(-16000),
		"uint16":   uint16(65000),
		"int32":    int32(-2000000000),
		"uint32":   uint32(4000000000),
		"int64":    int64(math.MinInt64),
		"float32":  float32(1.5),
		"float64":  math.Pi,
		"decimal":  amqp.Decimal{Scale: 2, Value: -12345},
		"string":   "héllo, wörld",
		"empty":    "",
		"bytes":    []byte{0, 1, 2, 0xff},
		"true":     true,
		"false":    false,
		"void":     nil,
		"time":     ts,
		"array":    []any{int32(1), "two", []any{true, nil}, amqp.Table{"in": "array"}},
		"empty[]":  []any{},
		"table":    amqp.Table{"nested": amqp.Table{"deeper": int64(7)}, "list": []any{float64(2.5)}},
		"emptytab": amqp.Table{},
	}
	sent := amqp.Publishing{
		Headers:         headers,
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		DeliveryMode:    amqp.Persistent,
		Priority:        7,
		CorrelationId:   "corr-42",
		ReplyTo:         "reply.queue",
		Expiration:      "600000",
		MessageId:       "msg-42",
		Timestamp:       ts,
		Type:            "order.created",
		UserId:          uri.Username,
		AppId:           "conformance",
		Body:            []byte(`{"ok":true}`),
	}
	p := newPublisher(t, conn)
	p.publish("", q, false, sent)
	deliveries := consume(t, ch, q, "props", true)
	checkProperties(t, "consume", sent, recv(t, deliveries, "delivery"))
	if err := ch.Cancel("props", false); err != nil {
		t.Fatal(err)
	}

	// The same through basic.get, and with no properties at all.
	ch2 := channel(t, conn)
	p.publish("", q, false, sent)
	checkProperties(t, "get", sent, get(t, ch2, q, true))
	p.publish("", q, false, amqp.Publishing{})
	bare := get(t, ch2, q, true)
	if len(bare.Headers) != 0 {
		t.Errorf("headers on a bare message: %#v", bare.Headers)
	}
	if bare.ContentType != "" || bare.DeliveryMode != 0 || bare.Priority != 0 || !bare.Timestamp.IsZero() || bare.MessageId != "" || len(bare.Body) != 0 {
		t.Errorf("a message without properties arrived with some: %+v", bare)
	}
}

func checkProperties(t *testing.T, via string, sent amqp.Publishing, d amqp.Delivery) {
	t.Helper()
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s = %#v, want %#v", via, name, got, want)
		}
	}
	check("content-type", d.ContentType, sent.ContentType)
	check("content-encoding", d.ContentEncoding, sent.ContentEncoding)
	check("delivery-mode", d.DeliveryMode, sent.DeliveryMode)
	check("priority", d.Priority, sent.Priority)
	check("correlation-id", d.CorrelationId, sent.CorrelationId)
	check("reply-to", d.ReplyTo, sent.ReplyTo)
	check("expiration", d.Expiration, sent.Expiration)
	check("message-id", d.MessageId, sent.MessageId)
	check("timestamp", d.Timestamp.Unix(), sent.Timestamp.Unix())
	check("type", d.Type, sent.Type)
	check("user-id", d.UserId, sent.UserId)
	check("app-id", d.AppId, sent.AppId)
	check("body", d.Body, sent.Body)
	check("header count", len(d.Headers), len(sent.Headers))
	for k, want := range sent.Headers {
		got, ok := d.Headers[k]
		if !ok {
			t.Errorf("%s: header %q missing", via, k)
			continue
		}
		if arr, ok := want.([]any); ok && len(arr) == 0 {
			if ga, ok := got.([]any); !ok || len(ga) != 0 { // amqp091-go decodes an empty array as nil
				t.Errorf("%s: header %q = %#v, want an empty array", via, k, got)
			}
			continue
		}
		if tm, ok := want.(time.Time); ok {
			gt, isTime := got.(time.Time)
			if !isTime || !gt.Equal(tm) {
				t.Errorf("%s: header %q = %#v, want %v", via, k, got, tm)
			}
			continue
		}
		check(fmt.Sprintf("header %q", k), got, want)
	}
}

func TestPublishValidation(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		msg    amqp.Publishing
		prefix string
	}{
		{"user-id of another user", amqp.Publishing{UserId: "conformance-someone-else"}, "PRECONDITION_FAILED - user_id property set to 'conformance-someone-else' but authenticated user was '"},
		{"non-numeric expiration", amqp.Publishing{Expiration: "soon"}, "PRECONDITION_FAILED - invalid expiration 'soon'"},
		{"negative expiration", amqp.Publishing{Expiration: "-1"}, "PRECONDITION_FAILED - invalid expiration '-1'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, ch := connChannel(t)
			q := declareQueue(t, ch, nil)
			pub := channel(t, dial(t))
			closes := notifyClose(pub)
			c.msg.Body = []byte("x")
			if err := pub.Publish("", q, false, false, c.msg); err != nil {
				t.Fatal(err)
			}
			wantClosed(t, closes, amqp.PreconditionFailed, c.prefix)
			wantMessages(t, ch, q, 0)
		})
	}
}

// TestBodySizes: bodies that fill frames exactly, straddle frame boundaries, span hundreds of
// frames or are empty arrive byte for byte, whatever frame size each side negotiated.
func TestBodySizes(t *testing.T) {
	t.Parallel()
	const small = 4096
	payload := small - 8 // frame overhead: 7 bytes of header, 1 frame-end octet
	sizes := []int{0, 1, payload - 1, payload, payload + 1, 2 * payload, 2*payload + 1, 131072 - 8, 131072 - 7, 1 << 20, 3<<20 + 17}
	for _, pubFrame := range []int{small, 0} {
		for _, subFrame := range []int{small, 0} {
			t.Run(fmt.Sprintf("publisher frame %d, consumer frame %d", pubFrame, subFrame), func(t *testing.T) {
				t.Parallel()
				pubConn := dialConfig(t, brokerURL, amqp.Config{FrameSize: pubFrame})
				subConn := dialConfig(t, brokerURL, amqp.Config{FrameSize: subFrame})
				sub := channel(t, subConn)
				q := declareQueue(t, sub, nil)
				p := newPublisher(t, pubConn)
				bodies := make([][]byte, len(sizes))
				for i, n := range sizes {
					bodies[i] = make([]byte, n)
					for j := range bodies[i] {
						bodies[i][j] = byte(j*7 + i + j>>8)
					}
					p.publish("", q, false, amqp.Publishing{Body: bodies[i], MessageId: fmt.Sprint(n)})
				}
				deliveries := consume(t, sub, q, "", true)
				for i, want := range bodies {
					d := recv(t, deliveries, fmt.Sprintf("body of %d bytes", sizes[i]))
					if d.MessageId != fmt.Sprint(sizes[i]) || !bytes.Equal(d.Body, want) {
						t.Errorf("body %q: got %d bytes (equal: %v), want %d", d.MessageId, len(d.Body), bytes.Equal(d.Body, want), len(want))
					}
				}
			})
		}
	}
}
