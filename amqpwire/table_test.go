package amqpwire

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func everyTypeMap() map[string]any {
	return map[string]any{
		"bool":      true,
		"int8":      int8(-8),
		"uint8":     uint8(200),
		"int16":     int16(-1600),
		"uint16":    uint16(60000),
		"int32":     int32(-320000),
		"uint32":    uint32(4000000000),
		"int64":     int64(math.MinInt64),
		"float32":   float32(1.5),
		"float64":   math.Pi,
		"decimal":   Decimal{Scale: 2, Value: -12345},
		"string":    "héllo",
		"bytes":     []byte{0, 1, 2, 0xff},
		"timestamp": time.Unix(1700000000, 0).UTC(),
		"void":      nil,
		"array":     []any{int32(1), "two", []any{true, nil}, map[string]any{"in": "array"}},
		"table":     map[string]any{"nested": map[string]any{"deep": Decimal{Scale: 1, Value: 5}}, "arr": []any{}},
		"empty":     map[string]any{},
	}
}

// normalize turns the encodable inputs into the types Map decodes to.
func normalize(t *testing.T, v any) any {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		tab, err := NewTable(v)
		if err != nil {
			t.Fatal(err)
		}
		return tab
	case []any:
		out := []any{}
		for _, e := range v {
			out = append(out, normalize(t, e))
		}
		return out
	case int:
		return int64(v)
	}
	return v
}

func TestTableEveryType(t *testing.T) {
	in := everyTypeMap()
	tab, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Validate(); err != nil {
		t.Fatal(err)
	}
	if tab.Len() != len(in) {
		t.Fatalf("Len %d want %d", tab.Len(), len(in))
	}
	got, err := tab.Map()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		want := normalize(t, v)
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("%s: got %#v want %#v", k, got[k], want)
		}
		gv, ok, err := tab.Get(k)
		if err != nil || !ok || !reflect.DeepEqual(gv, want) {
			t.Errorf("Get(%s) = %#v %v %v", k, gv, ok, err)
		}
		if TypeOf(gv) != TypeOf(v) {
			t.Errorf("%s: TypeOf decoded %q, encoded %q", k, TypeOf(gv), TypeOf(v))
		}
	}
	// Decoding and re-encoding the decoded map gives the same bytes.
	again, err := NewTable(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(tab) {
		t.Fatal("re-encode differs")
	}
	// Nested tables decode lazily.
	nested, _, _ := tab.Get("table")
	inner, ok, err := nested.(Table).Get("nested")
	if err != nil || !ok {
		t.Fatal(err)
	}
	if v, _, _ := inner.(Table).Get("deep"); v != (Decimal{Scale: 1, Value: 5}) {
		t.Fatalf("deep = %#v", v)
	}
	if _, ok, err := tab.Get("missing"); ok || err != nil {
		t.Fatal("missing key found")
	}
}

func TestTableKeysSortedAndFirstWins(t *testing.T) {
	tab, _ := NewTable(map[string]any{"b": int32(2), "a": int32(1)})
	if tab[1] != 'a' {
		t.Fatal("keys not sorted")
	}
	tab, _ = AppendField(tab, "a", int32(3))
	if v, _, _ := tab.Get("a"); v != int32(1) {
		t.Fatalf("first value should win, got %v", v)
	}
	m, _ := tab.Map()
	if m["a"] != int32(1) || len(m) != 2 || tab.Len() != 3 {
		t.Fatalf("%v len %d", m, tab.Len())
	}
}

func TestTableEncodeConversions(t *testing.T) {
	cases := []struct {
		in   any
		want any
		typ  byte
	}{
		{int(-3), int64(-3), 'l'},
		{uint64(7), int64(7), 'l'},
		{uint(9), int64(9), 'l'},
		{Table(nil), Table(nil), 'F'},
		{[]byte(nil), []byte{}, 'x'},
	}
	for _, c := range cases {
		tab, err := AppendField(nil, "k", c.in)
		if err != nil {
			t.Fatal(err)
		}
		if tab[2] != c.typ {
			t.Errorf("%T encoded as %q", c.in, tab[2])
		}
		v, _, err := tab.Get("k")
		if err != nil || !reflect.DeepEqual(v, c.want) {
			t.Errorf("%T: got %#v want %#v (%v)", c.in, v, c.want, err)
		}
	}
	for _, bad := range []any{uint64(math.MaxUint64), struct{}{}, []string{"x"}, map[string]string{}} {
		if _, err := AppendField(nil, "k", bad); !errors.Is(err, ErrUnsupportedValue) {
			t.Errorf("%T: err %v", bad, err)
		}
		if TypeOf(bad) != 0 {
			t.Errorf("TypeOf(%T) = %q", bad, TypeOf(bad))
		}
	}
	if _, err := AppendField(nil, strings.Repeat("k", 256), 1); err == nil {
		t.Error("long key accepted")
	}
	// A failed append leaves the table as it was.
	tab, _ := AppendField(nil, "a", 1)
	tab2, err := AppendField(tab, "b", struct{}{})
	if err == nil || string(tab2) != string(tab) {
		t.Error("failed append changed the table")
	}
	// 'L' is accepted on decode as a signed 64-bit integer, as RabbitMQ does.
	v, _, err := Table("\x01kL\xff\xff\xff\xff\xff\xff\xff\xfe").Get("k")
	if err != nil || v != int64(-2) {
		t.Errorf("'L': %v %v", v, err)
	}
}

func TestTableMalformed(t *testing.T) {
	cases := map[string]string{
		"truncated name":         "\x05ab",
		"missing type":           "\x01k",
		"unknown type":           "\x01kZ",
		"truncated int":          "\x01kI\x00\x00",
		"string length too long": "\x01kS\x00\x00\x00\x09abc",
		"huge string length":     "\x01kS\xff\xff\xff\xff",
		"truncated length":       "\x01kS\x00\x00",
		"bad nested table":       "\x01kF\x00\x00\x00\x03\x01xZ",
		"bad array element":      "\x01kA\x00\x00\x00\x02I\x00",
		"unknown array type":     "\x01kA\x00\x00\x00\x01Z",
	}
	for name, raw := range cases {
		tab := Table(raw)
		if err := tab.Validate(); !errors.Is(err, ErrMalformedTable) {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if _, err := tab.Map(); err == nil {
			t.Errorf("%s: Map accepted", name)
		}
		if _, _, err := tab.Get("k"); err == nil && !strings.HasPrefix(name, "bad") {
			t.Errorf("%s: Get accepted", name)
		}
	}
	if _, _, err := ReadTable([]byte{0, 0, 0, 9, 1}); err == nil {
		t.Error("ReadTable accepted a short table")
	}
}

func TestTableDepthLimit(t *testing.T) {
	// Build nesting one past the limit by hand: tables inside tables.
	inner := Table(nil)
	for i := 0; i < MaxTableDepth; i++ {
		inner = AppendTable([]byte("\x01kF"), inner)
	}
	if err := inner.Validate(); !errors.Is(err, ErrTableTooDeep) {
		t.Fatalf("depth %d: %v", MaxTableDepth+1, err)
	}
	if _, err := inner.Map(); !errors.Is(err, ErrTableTooDeep) {
		t.Fatalf("Map: %v", err)
	}
	ok := Table(nil)
	for i := 0; i < MaxTableDepth-1; i++ {
		ok = AppendTable([]byte("\x01kF"), ok)
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("depth %d rejected: %v", MaxTableDepth, err)
	}
	// Encoding a self-referencing array stops at the limit instead of
	// recursing forever.
	cyc := []any{nil}
	cyc[0] = cyc
	if _, err := AppendField(nil, "k", cyc); !errors.Is(err, ErrTableTooDeep) {
		t.Fatalf("cyclic: %v", err)
	}
}

func TestTableDoesNotAlias(t *testing.T) {
	tab, _ := NewTable(map[string]any{"s": "abc", "x": []byte("xyz"), "f": map[string]any{"a": "b"}})
	s, _, _ := tab.Get("s")
	x, _, _ := tab.Get("x")
	f, _, _ := tab.Get("f")
	for i := range tab {
		tab[i] = 0
	}
	if s != "abc" || string(x.([]byte)) != "xyz" {
		t.Fatal("aliased")
	}
	if v, _, _ := f.(Table).Get("a"); v != "b" {
		t.Fatal("nested table aliased")
	}
}

func TestEmptyTable(t *testing.T) {
	var tab Table
	if tab.Len() != 0 || tab.Validate() != nil {
		t.Fatal("nil table")
	}
	m, err := tab.Map()
	if err != nil || len(m) != 0 {
		t.Fatal(m, err)
	}
	if b := AppendTable(nil, nil); string(b) != "\x00\x00\x00\x00" {
		t.Fatalf("% x", b)
	}
	got, rest, err := ReadTable([]byte{0, 0, 0, 0, 9})
	if err != nil || got != nil || len(rest) != 1 {
		t.Fatal(got, rest, err)
	}
}
