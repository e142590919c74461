package amqpwire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fillNonZero sets every exported field of the struct *m to a distinct
// non-zero value, except reserved fields, which are always encoded as zero.
func fillNonZero(t *testing.T, m Method, seed int) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		if strings.HasPrefix(name, "Reserved") {
			continue
		}
		n := seed + i + 1
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(n) * 0x0101)
		case reflect.String:
			f.SetString(strings.Repeat(string(rune('a'+n%26)), n) + "-é")
		case reflect.Slice: // Table
			tab, err := NewTable(map[string]any{"k": int32(n), "s": "v", "nested": map[string]any{"a": []any{true, "x"}}})
			if err != nil {
				t.Fatal(err)
			}
			f.Set(reflect.ValueOf(tab))
		default:
			t.Fatalf("%s.%s: unhandled kind %s", m.MethodName(), name, f.Kind())
		}
	}
}

func TestAllMethodsRoundTrip(t *testing.T) {
	seen := map[uint32]bool{}
	for _, m := range allMethods() {
		t.Run(m.MethodName(), func(t *testing.T) {
			id := uint32(m.ClassID())<<16 | uint32(m.MethodID())
			if seen[id] {
				t.Fatalf("duplicate id %d/%d", m.ClassID(), m.MethodID())
			}
			seen[id] = true
			for _, seed := range []int{0, 7} {
				fillNonZero(t, m, seed)
				payload := AppendMethod(nil, m)
				got, err := DecodeMethod(payload)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if !reflect.DeepEqual(got, m) {
					t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
				}
				// Re-encoding gives the same bytes.
				if again := AppendMethod(nil, got); !bytes.Equal(again, payload) {
					t.Fatalf("re-encode differs")
				}
				// Every proper prefix of the arguments is rejected with 501.
				for cut := 4; cut < len(payload); cut++ {
					_, err := DecodeMethod(payload[:cut])
					assertConnErr(t, err, CodeFrameError, m.ClassID(), m.MethodID())
				}
				// A trailing byte is rejected with 501.
				_, err = DecodeMethod(append(payload, 0))
				assertConnErr(t, err, CodeFrameError, m.ClassID(), m.MethodID())
			}
			// The zero value round-trips too.
			zero := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Method)
			got, err := DecodeMethod(AppendMethod(nil, zero))
			if err != nil {
				t.Fatalf("decode zero: %v", err)
			}
			if !reflect.DeepEqual(got, zero) {
				t.Fatalf("zero round trip: got %#v", got)
			}
		})
	}
	if len(seen) < 64 {
		t.Fatalf("only %d methods generated", len(seen))
	}
}

func assertConnErr(t *testing.T, err error, code, classID, methodID uint16) *ConnectionError {
	t.Helper()
	var ce *ConnectionError
	if !errors.As(err, &ce) {
		t.Fatalf("want *ConnectionError %d, got %v", code, err)
	}
	if ce.Code != code || ce.ClassID != classID || ce.MethodID != methodID {
		t.Fatalf("want code %d class %d method %d, got %+v", code, classID, methodID, ce)
	}
	if !strings.HasPrefix(ce.Text, ReplyName(code)+" - ") {
		t.Fatalf("text %q does not start with %s", ce.Text, ReplyName(code))
	}
	return ce
}

func TestMethodAttributes(t *testing.T) {
	cases := []struct {
		m                       Method
		name                    string
		content, sync, toServer bool
	}{
		{&BasicPublish{}, "basic.publish", true, false, true},
		{&BasicDeliver{}, "basic.deliver", true, false, false},
		{&BasicReturn{}, "basic.return", true, false, false},
		{&BasicGetOk{}, "basic.get-ok", true, true, false},
		{&BasicAck{}, "basic.ack", false, false, true},
		{&BasicNack{}, "basic.nack", false, false, true},
		{&BasicCancel{}, "basic.cancel", false, true, true},
		{&BasicRecover{}, "basic.recover", false, true, true},
		{&BasicRecoverAsync{}, "basic.recover-async", false, false, true},
		{&ConnectionStart{}, "connection.start", false, true, false},
		{&ConnectionStartOk{}, "connection.start-ok", false, true, true},
		{&ConnectionClose{}, "connection.close", false, true, true},
		{&ConnectionBlocked{}, "connection.blocked", false, false, false},
		{&ConnectionUpdateSecret{}, "connection.update-secret", false, true, true},
		{&ConnectionUpdateSecretOk{}, "connection.update-secret-ok", false, true, false},
		{&ChannelFlowOk{}, "channel.flow-ok", false, false, true},
		{&ConfirmSelect{}, "confirm.select", false, true, true},
		{&TxCommitOk{}, "tx.commit-ok", false, true, false},
		{&ExchangeUnbindOk{}, "exchange.unbind-ok", false, true, false},
	}
	for _, c := range cases {
		if c.m.MethodName() != c.name || c.m.HasContent() != c.content ||
			c.m.Synchronous() != c.sync || c.m.ServerReceives() != c.toServer {
			t.Errorf("%s: got name %q content %v sync %v server %v", c.name, c.m.MethodName(),
				c.m.HasContent(), c.m.Synchronous(), c.m.ServerReceives())
		}
	}
	if (&ExchangeUnbindOk{}).MethodID() != 51 || (&QueueUnbindOk{}).MethodID() != 51 {
		t.Error("unbind-ok ids must be 51")
	}
}

func TestBitPacking(t *testing.T) {
	m := &QueueDeclare{Queue: "q", Passive: true, Exclusive: true, NoWait: true}
	got := m.Append(nil)
	want := []byte{0, 0, 1, 'q', 0x01 | 0x04 | 0x10, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x want % x", got, want)
	}
	// Unknown bits in a bit octet are ignored on decode, as RabbitMQ does.
	var d QueueDeclare
	if err := d.Read([]byte{0, 0, 1, 'q', 0xff, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if !d.Passive || !d.Durable || !d.Exclusive || !d.AutoDelete || !d.NoWait {
		t.Fatalf("%+v", d)
	}
	// connection.open's reserved bit is encoded as zero.
	o := &ConnectionOpen{VirtualHost: "/", Reserved1: "x", Reserved2: true}
	if got := o.Append(nil); !bytes.Equal(got, []byte{1, '/', 0, 0}) {
		t.Fatalf("connection.open: % x", got)
	}
}

func TestDecodeMethodErrors(t *testing.T) {
	_, err := DecodeMethod([]byte{0, 70, 0, 10})
	ce := assertConnErr(t, err, CodeNotImplemented, 70, 10)
	if ce.Text != "NOT_IMPLEMENTED - unknown method class 70 method 10" {
		t.Fatalf("text %q", ce.Text)
	}
	_, err = DecodeMethod([]byte{0, 60, 0, 200}) // basic.credit: not in 0-9-1
	assertConnErr(t, err, CodeNotImplemented, 60, 200)
	for _, short := range [][]byte{nil, {0}, {0, 60, 0}} {
		_, err = DecodeMethod(short)
		assertConnErr(t, err, CodeFrameError, 0, 0)
	}
	// queue.declare with an arguments table whose length runs past the end.
	_, err = DecodeMethod([]byte{0, 50, 0, 10, 0, 0, 1, 'q', 0, 0, 0, 0, 9, 1, 'k'})
	assertConnErr(t, err, CodeFrameError, ClassQueue, MethodQueueDeclare)
	// A malformed table inside a well-delimited arguments table.
	_, err = DecodeMethod([]byte{0, 50, 0, 10, 0, 0, 1, 'q', 0, 0, 0, 0, 3, 1, 'k', 'Z'})
	ce = assertConnErr(t, err, CodeFrameError, ClassQueue, MethodQueueDeclare)
	if !strings.Contains(ce.Text, "cannot decode queue.declare arguments") {
		t.Fatalf("text %q", ce.Text)
	}
	// A huge longstr length is rejected without allocating it.
	_, err = DecodeMethod([]byte{0, 10, 0, 21, 0xff, 0xff, 0xff, 0xff})
	assertConnErr(t, err, CodeFrameError, ClassConnection, MethodConnectionSecureOk)
}

func TestShortstrUTF8(t *testing.T) {
	bad := []byte{0, 50, 0, 10, 0, 0, 2, 0xc3, 0x28, 0, 0, 0, 0, 0}
	_, err := DecodeMethod(bad)
	ce := assertConnErr(t, err, CodeFrameError, ClassQueue, MethodQueueDeclare)
	if !strings.Contains(ce.Text, "malformed UTF-8 in shortstr 'queue'") {
		t.Fatalf("text %q", ce.Text)
	}
	// basic.publish is not checked, as in RabbitMQ.
	pub := []byte{0, 60, 0, 40, 0, 0, 2, 0xc3, 0x28, 0, 0}
	if _, err := DecodeMethod(pub); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	tab, _ := NewTable(map[string]any{"x-max-length": int32(5)})
	payload := AppendMethod(nil, &QueueDeclare{Queue: "orders", Arguments: tab})
	m, err := DecodeMethod(payload)
	if err != nil {
		t.Fatal(err)
	}
	for i := range payload {
		payload[i] = 0xAA
	}
	qd := m.(*QueueDeclare)
	if qd.Queue != "orders" {
		t.Fatalf("queue aliased: %q", qd.Queue)
	}
	if v, ok, err := qd.Arguments.Get("x-max-length"); err != nil || !ok || v != int32(5) {
		t.Fatalf("arguments aliased: %v %v %v", v, ok, err)
	}
}

func TestValidate(t *testing.T) {
	if err := (&ExchangeDeclare{}).Validate(); err == nil {
		t.Fatal("empty exchange name accepted")
	} else {
		assertConnErr(t, err, CodeSyntaxError, ClassExchange, MethodExchangeDeclare)
	}
	// Long names with any characters are accepted (RabbitMQ allows them).
	if err := (&ExchangeDeclare{Exchange: strings.Repeat("é!", 127)}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (&QueueDeclare{}).Validate(); err != nil {
		t.Fatal("queue.declare has no notnull assert:", err)
	}
	if err := (&ConnectionClose{ReplyText: "x"}).Validate(); err == nil {
		t.Fatal("zero reply-code accepted")
	}
	if err := (&ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00u\x00p", Locale: "en_US"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (&ConnectionOpen{}).Validate(); err == nil {
		t.Fatal("empty virtual-host accepted")
	}
}

func TestShortstrTruncatedOnEncode(t *testing.T) {
	long := strings.Repeat("a", 254) + "é" // 256 bytes, 'é' straddles 255
	m := &ChannelClose{ReplyCode: CodeNotFound, ReplyText: long}
	got, err := DecodeMethod(AppendMethod(nil, m))
	if err != nil {
		t.Fatal(err)
	}
	if text := got.(*ChannelClose).ReplyText; text != strings.Repeat("a", 254) {
		t.Fatalf("truncated to %d bytes", len(text))
	}
	m.ReplyText = strings.Repeat("b", 300)
	got, _ = DecodeMethod(AppendMethod(nil, m))
	if n := len(got.(*ChannelClose).ReplyText); n != 255 {
		t.Fatalf("truncated to %d bytes", n)
	}
}

func TestReplyNames(t *testing.T) {
	cases := map[uint16]string{
		CodeNotFound: "NOT_FOUND", CodeAccessRefused: "ACCESS_REFUSED", CodeNoRoute: "NO_ROUTE",
		CodeConnectionForced: "CONNECTION_FORCED", CodeFrameError: "FRAME_ERROR",
		CodeInternalError: "INTERNAL_ERROR", CodeReplySuccess: "REPLY_SUCCESS", 999: "",
	}
	for code, name := range cases {
		if got := ReplyName(code); got != name {
			t.Errorf("ReplyName(%d) = %q, want %q", code, got, name)
		}
	}
	for _, c := range []uint16{320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541} {
		if !IsHardError(c) {
			t.Errorf("%d should be hard", c)
		}
	}
	for _, c := range []uint16{200, 311, 312, 313, 403, 404, 405, 406, 999} {
		if IsHardError(c) {
			t.Errorf("%d should not be hard", c)
		}
	}
	e := NewChannelError(CodeNotFound, ClassQueue, MethodQueueDeclare, "no queue '%s' in vhost '%s'", "q", "/")
	if e.Text != "NOT_FOUND - no queue 'q' in vhost '/'" || e.ClassID != ClassQueue || e.MethodID != MethodQueueDeclare {
		t.Fatalf("%+v", e)
	}
	if !strings.Contains(e.Error(), "404") {
		t.Fatal(e.Error())
	}
	if got := NewConnectionError(CodeNoRoute, 0, 0, "").Text; got != "NO_ROUTE" {
		t.Fatal(got)
	}
	if got := NewConnectionError(999, 0, 0, "x").Text; got != "999 - x" {
		t.Fatal(got)
	}
}
