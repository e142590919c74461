package amqpwire

import (
	"bytes"
	"io"
	"testing"
)

// publishFrames is basic.publish + content header + a 1 KiB body frame.
func publishFrames(b *testing.B) []byte {
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	props := Properties{Flags: FlagContentType | FlagDeliveryMode | FlagMessageID,
		ContentType: "application/json", DeliveryMode: 2, MessageID: "msg-0001"}
	w.WriteMethod(1, &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders"})
	w.WriteContent(1, ClassBasic, &props, make([]byte, 1024), 131072)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkReadFrame(b *testing.B) {
	data := publishFrames(b)
	r := NewFrameReader(&loopReader{data: data}, 131072)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for range 3 {
			if _, err := r.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkWriteDeliver(b *testing.B) {
	w := NewFrameWriter(io.Discard)
	d := &BasicDeliver{ConsumerTag: "amq.ctag-0123456789", DeliveryTag: 1, Exchange: "amq.direct", RoutingKey: "orders"}
	props := Properties{Flags: FlagContentType | FlagDeliveryMode, ContentType: "application/json", DeliveryMode: 2}
	body := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		d.DeliveryTag++
		w.WriteMethod(1, d)
		w.WriteContent(1, ClassBasic, &props, body, 131072)
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBasicPublish(b *testing.B) {
	payload := AppendMethod(nil, &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders", Mandatory: true})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMethod(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPropertiesDecode(b *testing.B) {
	h, _ := NewTable(map[string]any{"x-retry": int32(3), "trace-id": "abc123", "x-match": "all"})
	p := Properties{Flags: FlagContentType | FlagHeaders | FlagDeliveryMode | FlagMessageID | FlagTimestamp,
		ContentType: "application/json", Headers: h, DeliveryMode: 2, MessageID: "msg-0001", Timestamp: 1700000000}
	raw := p.Append(nil)
	var out Properties
	b.ReportAllocs()
	for b.Loop() {
		if err := out.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTableGet(b *testing.B) {
	t, _ := NewTable(map[string]any{
		"x-match": "all", "format": "pdf", "type": "report", "x-retry": int32(3),
		"nested": map[string]any{"a": []any{int64(1), "b"}}, "zzz": true,
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := t.Get("type"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkDecodeBasicPublishInto is the broker's hot path: a channel decodes every publish
// into the same struct.
func BenchmarkDecodeBasicPublishInto(b *testing.B) {
	payload := AppendMethod(nil, &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders", Mandatory: true})
	var m BasicPublish
	b.ReportAllocs()
	for b.Loop() {
		if err := m.DecodeInto(payload); err != nil {
			b.Fatal(err)
		}
	}
}
