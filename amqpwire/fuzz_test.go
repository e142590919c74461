package amqpwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// seedFrames is a valid stream: handshake methods, a publish with
// properties and a split body, a heartbeat.
func seedFrames(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	for _, m := range seedMethods(tb) {
		w.WriteMethod(1, m)
	}
	props := seedProperties(tb)
	w.WriteContent(1, ClassBasic, &props, bytes.Repeat([]byte("b"), 300), 128)
	w.WriteHeartbeat()
	w.Flush()
	return buf.Bytes()
}

func seedMethods(tb testing.TB) []Method {
	tb.Helper()
	args, err := NewTable(map[string]any{"x-max-length": int32(10), "x-queue-type": "quorum", "x-arr": []any{int64(1), "a"}})
	if err != nil {
		tb.Fatal(err)
	}
	return []Method{
		&ConnectionStartOk{ClientProperties: args, Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"},
		&ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		&ConnectionOpen{VirtualHost: "/"},
		&ChannelOpen{},
		&QueueDeclare{Queue: "orders", Durable: true, Arguments: args},
		&QueueBind{Queue: "orders", Exchange: "amq.topic", RoutingKey: "a.*.#", Arguments: args},
		&BasicPublish{Exchange: "amq.direct", RoutingKey: "orders", Mandatory: true},
		&BasicConsume{Queue: "orders", ConsumerTag: "c1", NoAck: true, Arguments: args},
		&BasicAck{DeliveryTag: 42, Multiple: true},
		&BasicNack{DeliveryTag: 7, Requeue: true},
		&ChannelClose{ReplyCode: 404, ReplyText: "NOT_FOUND - no queue 'q' in vhost '/'", ClassId: ClassQueue, MethodId: MethodQueueDeclare},
		&ConfirmSelect{NoWait: true},
	}
}

func seedProperties(tb testing.TB) Properties {
	tb.Helper()
	h, err := NewTable(map[string]any{
		"x-death": []any{map[string]any{"count": int64(1), "reason": "expired", "time": time.Unix(1700000000, 0)}},
		"d":       Decimal{Scale: 3, Value: 1234}, "f": float32(1.5), "bytes": []byte{1, 2}, "v": nil,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return Properties{Flags: 0xfffc, ContentType: "text/plain", Headers: h, DeliveryMode: 2, Priority: 1,
		CorrelationID: "c", ReplyTo: "r", Expiration: "1000", MessageID: "m", Timestamp: 1, Type: "t",
		UserID: "u", AppID: "a", ClusterID: "cl"}
}

func requireProtocolError(t *testing.T, err error, codes ...uint16) {
	t.Helper()
	var ce *ConnectionError
	if !errors.As(err, &ce) {
		t.Fatalf("not a *ConnectionError: %v", err)
	}
	for _, c := range codes {
		if ce.Code == c {
			return
		}
	}
	t.Fatalf("unexpected code %d: %v", ce.Code, err)
}

func FuzzReadFrame(f *testing.F) {
	f.Add(seedFrames(f))
	f.Add([]byte{FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd})
	f.Add([]byte{FrameBody, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{FrameMethod, 0, 0, 0, 0, 0, 4, 0, 10, 0, 11, 0xCD})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewFrameReader(bytes.NewReader(data), 1<<20)
		for i := 0; i < 64; i++ {
			fr, err := r.ReadFrame()
			if err != nil {
				var ce *ConnectionError
				if errors.As(err, &ce) && ce.Code != CodeFrameError {
					t.Fatalf("frame error with code %d", ce.Code)
				}
				return
			}
			switch fr.Type {
			case FrameMethod:
				checkMethod(t, fr.Payload)
			case FrameHeader:
				checkContentHeader(t, fr.Payload)
			case FrameHeartbeat:
				if len(fr.Payload) != 0 {
					t.Fatal("heartbeat with payload")
				}
			}
		}
	})
}

// checkMethod decodes a method payload; a decoded method must re-encode
// stably: encode(decode(encode(m))) == encode(m).
func checkMethod(t *testing.T, payload []byte) {
	m, err := DecodeMethod(payload)
	if err != nil {
		requireProtocolError(t, err, CodeFrameError, CodeNotImplemented)
		return
	}
	_ = m.Validate()
	enc := AppendMethod(nil, m)
	m2, err := DecodeMethod(enc)
	if err != nil {
		t.Fatalf("%s: re-decode: %v", m.MethodName(), err)
	}
	if enc2 := AppendMethod(nil, m2); !bytes.Equal(enc, enc2) {
		t.Fatalf("%s: unstable encoding", m.MethodName())
	}
	m3, _ := DecodeMethod(AppendMethod(nil, m2))
	if !reflect.DeepEqual(m2, m3) {
		t.Fatalf("%s: unstable decode", m.MethodName())
	}
}

func checkContentHeader(t *testing.T, payload []byte) {
	var h ContentHeader
	if err := h.Decode(payload); err != nil {
		requireProtocolError(t, err, CodeFrameError, CodeUnexpectedFrame)
		return
	}
	if !bytes.Equal(h.RawProperties, payload[12:]) {
		t.Fatal("RawProperties differ from the payload")
	}
	checkProperties(t, h.RawProperties)
}

func checkProperties(t *testing.T, raw []byte) {
	var p Properties
	if err := p.Decode(raw); err != nil {
		requireProtocolError(t, err, CodeFrameError)
		return
	}
	enc := p.Append(nil)
	var p2 Properties
	if err := p2.Decode(enc); err != nil {
		t.Fatalf("re-decode: %v", err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("round trip:\n%#v\n%#v", p, p2)
	}
	if !bytes.Equal(p2.Append(nil), enc) {
		t.Fatal("unstable encoding")
	}
	if p.Headers != nil {
		if err := p.Headers.Validate(); err != nil {
			t.Fatalf("decoded headers invalid: %v", err)
		}
	}
}

func FuzzDecodeMethod(f *testing.F) {
	for _, m := range seedMethods(f) {
		f.Add(AppendMethod(nil, m))
	}
	for _, m := range allMethods() {
		f.Add(AppendMethod(nil, m))
	}
	f.Add([]byte{0, 70, 0, 10})
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkMethod(t, payload)
	})
}

func FuzzTable(f *testing.F) {
	tab, err := NewTable(everyTypeMap())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(tab))
	p := seedProperties(f)
	f.Add([]byte(p.Headers))
	f.Add([]byte("\x01kL\x00\x00\x00\x00\x00\x00\x00\x01\x01kS\x00\x00\x00\x01x"))
	f.Add([]byte("\x01kA\x00\x00\x00\x06F\x00\x00\x00\x00V"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab := Table(data)
		verr := tab.Validate()
		m, merr := tab.Map()
		if (verr == nil) != (merr == nil) {
			t.Fatalf("Validate %v but Map %v", verr, merr)
		}
		_ = tab.Len()
		_, _, _ = tab.Get("k")
		_ = tab.Each(func(string, any) error { return nil })
		if verr != nil {
			if !errors.Is(verr, ErrMalformedTable) && !errors.Is(verr, ErrTableTooDeep) {
				t.Fatalf("unexpected error %v", verr)
			}
			return
		}
		for k, v := range m {
			if TypeOf(v) == 0 {
				t.Fatalf("%s: decoded %T has no type", k, v)
			}
			if got, ok, err := tab.Get(k); err != nil || !ok || TypeOf(got) != TypeOf(v) {
				t.Fatalf("Get(%q) = %v %v %v", k, got, ok, err)
			}
		}
		// decode -> encode -> decode -> encode is stable.
		enc1, err := NewTable(m)
		if err != nil {
			t.Fatalf("encode decoded table: %v", err)
		}
		m2, err := enc1.Map()
		if err != nil {
			t.Fatalf("decode re-encoded table: %v", err)
		}
		enc2, err := NewTable(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatal("unstable table encoding")
		}
		if len(m2) != len(m) {
			t.Fatalf("%d keys became %d", len(m), len(m2))
		}
	})
}

func FuzzProperties(f *testing.F) {
	p := seedProperties(f)
	f.Add(p.Append(nil))
	f.Add((&Properties{Flags: FlagDeliveryMode, DeliveryMode: 2}).Append(nil))
	f.Add([]byte{0x80, 0x01, 0x00, 0x00, 1, 'x'})
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkProperties(t, raw)
	})
}

func FuzzContentHeader(f *testing.F) {
	p := seedProperties(f)
	hdr := []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	f.Add(append(hdr, p.Append(nil)...))
	f.Add(append(hdr, 0, 0))
	f.Add([]byte{0, 60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkContentHeader(t, payload)
	})
}
