package store

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestKeysSortNumerically(t *testing.T) {
	seqs := []uint64{0, 1, 255, 256, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	var keys [][]byte
	for _, q := range []uint64{1, 2, 256} {
		for _, s := range seqs {
			keys = append(keys, msgKey(q, s))
		}
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		t.Error("'M' keys do not sort by (queue, seq)")
	}
	for _, k := range keys {
		if !bytes.HasPrefix(k, queuePrefix(tagMessage, 1)) && !bytes.HasPrefix(k, queuePrefix(tagMessage, 2)) &&
			!bytes.HasPrefix(k, queuePrefix(tagMessage, 256)) {
			t.Errorf("key %x outside its queue's prefix", k)
		}
	}
}

func TestNamesDoNotCollide(t *testing.T) {
	// Without length prefixes ("a","bc") and ("ab","c") would be one key.
	k1, _ := queueKey("a", "bc")
	k2, _ := queueKey("ab", "c")
	if bytes.Equal(k1, k2) {
		t.Fatal("queue keys collide")
	}
	v, n, err := parseQueueKey(k1)
	if err != nil || v != "a" || n != "bc" {
		t.Fatalf("parseQueueKey = %q %q %v", v, n, err)
	}
	b := Binding{Vhost: "/", Source: "ex", DestKind: 2, Dest: "q", RoutingKey: "a.b", ArgsHash: [32]byte{1, 2, 3}}
	k, err := bindingKey(&b)
	if err != nil {
		t.Fatal(err)
	}
	var got Binding
	if err := parseBindingKey(k, &got); err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("binding key round trip: %+v %v", got, err)
	}
	if _, _, err := parseQueueKey(append(k1, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func FuzzRecords(f *testing.F) {
	f.Add([]byte{recordV1, 1, 5, 0, 0, 0, 0, 0, 0, 0, 9, 2, 'e', 'x', 1, 'r', 2, 0xa0, 0x01, 'b'}, "ex", "rk", []byte("props"), []byte("body"), true, int64(5), uint8(3))
	f.Add([]byte{}, "", "", []byte(nil), []byte(nil), false, int64(-1), uint8(0))
	f.Add([]byte{recordV1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "a", "", []byte{}, []byte{0}, false, int64(math.MaxInt64), uint8(255))
	f.Fuzz(func(t *testing.T, raw []byte, ex, rk string, props, body []byte, persistent bool, expiry int64, prio uint8) {
		// Arbitrary bytes: every decoder returns an error or a value, never panics.
		var m Message
		_ = decodeMessage(raw, &m)
		_, _, _ = decodeRef(raw)
		_, _ = decodeDeliveries(raw)
		_, _ = decodeSchema(raw)
		var q Queue
		_ = decodeQueue(raw, &q)
		var x Exchange
		_ = decodeExchange(raw, &x)
		var b Binding
		_ = decodeBinding(raw, &b)
		_ = parseBindingKey(raw, &b)
		_, _, _ = parseExchangeKey(raw)
		_, _, _ = parseSeqKey(tagMessage, raw)
		_, _ = parseSharedKey(raw)

		// Encode → decode round trips.
		in := Message{Exchange: ex, RoutingKey: rk, Properties: nilIfEmpty(props), Body: nilIfEmpty(body),
			Persistent: persistent, Expiry: expiry, Priority: prio}
		enc, err := appendMessage(nil, &in)
		if len(ex) > 255 || len(rk) > 255 {
			if err == nil {
				t.Fatal("over-long name encoded")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) != messageRecordSize(&in) {
			t.Fatalf("encoded %d bytes, size says %d", len(enc), messageRecordSize(&in))
		}
		var out Message
		if err := decodeMessage(enc, &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
		}
		id, size, err := decodeRef(appendRef(nil, persistent, uint64(expiry), uint32(len(body))))
		if err != nil || id != uint64(expiry) || size != uint32(len(body)) {
			t.Fatalf("ref round trip: %d %d %v", id, size, err)
		}
		qin := Queue{ID: uint64(expiry), AutoDelete: persistent, Args: nilIfEmpty(props)}
		var qout Queue
		if err := decodeQueue(encodeQueue(&qin), &qout); err != nil || !reflect.DeepEqual(qin, qout) {
			t.Fatalf("queue round trip: %+v %v", qout, err)
		}
		xin := Exchange{Kind: rk, Durable: persistent, Internal: prio&1 != 0, AutoDelete: prio&2 != 0, Args: nilIfEmpty(body)}
		xenc, err := encodeExchange(&xin)
		var xout Exchange
		if err != nil || decodeExchange(xenc, &xout) != nil || !reflect.DeepEqual(xin, xout) {
			t.Fatalf("exchange round trip: %+v %v", xout, err)
		}
		n, err := decodeDeliveries(encodeDeliveries(uint32(prio)))
		if err != nil || n != uint32(prio) {
			t.Fatalf("deliveries round trip: %d %v", n, err)
		}
		bin := Binding{Vhost: ex, Source: rk, DestKind: prio, Dest: rk, RoutingKey: ex, Args: nilIfEmpty(props)}
		copy(bin.ArgsHash[:], body)
		k, err := bindingKey(&bin)
		if err != nil {
			t.Fatal(err)
		}
		var bout Binding
		if err := parseBindingKey(k, &bout); err != nil {
			t.Fatal(err)
		}
		if err := decodeBinding(encodeBinding(&bin), &bout); err != nil || !reflect.DeepEqual(bin, bout) {
			t.Fatalf("binding round trip: %+v %v", bout, err)
		}
		ek, err := exchangeKey(ex, rk)
		if err != nil {
			t.Fatal(err)
		}
		if v, nm, err := parseExchangeKey(ek); err != nil || v != ex || nm != rk {
			t.Fatal(fmt.Sprint("exchange key round trip: ", v, nm, err))
		}
	})
}
