package amqpwire

import (
	"bytes"
	"reflect"
	"testing"
)

func fullProperties(t *testing.T) Properties {
	t.Helper()
	h, err := NewTable(map[string]any{"x-delay": int32(5), "trace": []any{"a", int64(1)}})
	if err != nil {
		t.Fatal(err)
	}
	return Properties{
		Flags:       0xfffc,
		ContentType: "application/json", ContentEncoding: "gzip", Headers: h,
		DeliveryMode: 2, Priority: 9, CorrelationID: "corr", ReplyTo: "amq.rabbitmq.reply-to",
		Expiration: "60000", MessageID: "id-1", Timestamp: 1700000000, Type: "t",
		UserID: "guest", AppID: "app", ClusterID: "c",
	}
}

func TestPropertiesEveryFlag(t *testing.T) {
	full := fullProperties(t)
	flags := []uint16{FlagContentType, FlagContentEncoding, FlagHeaders, FlagDeliveryMode, FlagPriority,
		FlagCorrelationID, FlagReplyTo, FlagExpiration, FlagMessageID, FlagTimestamp, FlagType,
		FlagUserID, FlagAppID, FlagClusterID}
	// Each flag alone, all flags, and none.
	sets := []uint16{0, 0xfffc}
	sets = append(sets, flags...)
	for _, set := range sets {
		p := full
		p.Flags = set
		raw := p.Append(nil)
		var got Properties
		if err := got.Decode(raw); err != nil {
			t.Fatalf("flags %#04x: %v", set, err)
		}
		want := maskProperties(full, set)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("flags %#04x:\n got %#v\nwant %#v", set, got, want)
		}
		if again := got.Append(nil); !bytes.Equal(again, raw) {
			t.Fatalf("flags %#04x: re-encode differs", set)
		}
		// Truncations and a trailing byte are rejected.
		for cut := 0; cut < len(raw); cut++ {
			if err := new(Properties).Decode(raw[:cut]); err == nil {
				t.Fatalf("flags %#04x: cut at %d accepted", set, cut)
			}
		}
		if err := new(Properties).Decode(append(raw, 0)); err == nil {
			t.Fatalf("flags %#04x: trailing byte accepted", set)
		}
	}
	// A present field may hold its zero value.
	p := Properties{Flags: FlagDeliveryMode | FlagContentType}
	var got Properties
	if err := got.Decode(p.Append(nil)); err != nil || !reflect.DeepEqual(got, Properties{Flags: p.Flags}) {
		t.Fatal(got, err)
	}
}

// maskProperties keeps the fields whose flag is in set.
func maskProperties(p Properties, set uint16) Properties {
	q := Properties{Flags: set}
	v, w := reflect.ValueOf(&q).Elem(), reflect.ValueOf(p)
	for i := 1; i < v.NumField(); i++ { // field i-1 has flag bit 15-(i-1)
		if set&(0x8000>>(i-1)) != 0 {
			v.Field(i).Set(w.Field(i))
		}
	}
	return q
}

func TestPropertiesContinuationAndUnknownBits(t *testing.T) {
	// Continuation word with no further flags: accepted.
	raw := []byte{0x80, 0x01, 0x00, 0x00, 1, 'x'}
	var p Properties
	if err := p.Decode(raw); err != nil || p.ContentType != "x" || p.Flags != FlagContentType {
		t.Fatal(p, err)
	}
	// Chained continuation words.
	raw = []byte{0x00, 0x01, 0x00, 0x01, 0x00, 0x00}
	if err := p.Decode(raw); err != nil || p.Flags != 0 {
		t.Fatal(p, err)
	}
	// A property flagged in a continuation word is unknown: error.
	if err := p.Decode([]byte{0x00, 0x01, 0x80, 0x00, 1, 'x'}); err == nil {
		t.Fatal("unknown continuation property accepted")
	}
	// Bit 1 of the first word is ignored, as RabbitMQ does.
	if err := p.Decode([]byte{0x00, 0x02}); err != nil || p.Flags != 0 {
		t.Fatal(p, err)
	}
	// Append never writes the continuation or unknown bits.
	p = Properties{Flags: 0xffff}
	if b := p.Append(nil); b[1]&0x03 != 0 {
		t.Fatalf("% x", b[:2])
	}
	// Malformed headers are rejected with 501.
	err := p.Decode([]byte{0x20, 0x00, 0, 0, 0, 3, 1, 'k', 'Z'})
	assertConnErr(t, err, CodeFrameError, 0, 0)
}

func TestPropertiesDoNotAlias(t *testing.T) {
	full := fullProperties(t)
	raw := full.Append(nil)
	var p Properties
	if err := p.Decode(raw); err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		raw[i] = 0
	}
	want := fullProperties(t)
	if !reflect.DeepEqual(p, want) {
		t.Fatal("decoded properties alias their input")
	}
}

func TestContentHeader(t *testing.T) {
	props := fullProperties(t)
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	w.WriteContent(1, ClassBasic, &props, nil, 0)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := NewFrameReader(&buf, 0).ReadFrame()
	if err != nil || f.Type != FrameHeader {
		t.Fatal(f, err)
	}
	var h ContentHeader
	if err := h.Decode(f.Payload); err != nil {
		t.Fatal(err)
	}
	if h.ClassID != ClassBasic || h.BodySize != 0 || !reflect.DeepEqual(h.Properties, props) {
		t.Fatalf("%+v", h)
	}
	if !bytes.Equal(h.RawProperties, props.Append(nil)) {
		t.Fatal("raw properties differ")
	}
	f.Payload[20] ^= 0xff
	if bytes.Equal(h.RawProperties, f.Payload[12:]) {
		t.Fatal("RawProperties aliases the payload")
	}

	// Errors.
	assertConnErr(t, h.Decode(make([]byte, 13)), CodeFrameError, 0, 0)
	weighted := []byte{0, 60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0}
	assertConnErr(t, h.Decode(weighted), CodeUnexpectedFrame, 0, 0)
	bad := []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x80, 0, 9}
	assertConnErr(t, h.Decode(bad), CodeFrameError, 0, 0)
	ok := []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0}
	if err := h.Decode(ok); err != nil || h.BodySize != 5 || h.Properties.Flags != 0 {
		t.Fatal(h, err)
	}
}
