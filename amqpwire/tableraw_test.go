package amqpwire

import (
	"bytes"
	"errors"
	"testing"
)

// Raw finds the first field with a key and returns its wire bytes without decoding: the body
// of variable-size values, the fixed bytes of the others.
func TestTableRaw(t *testing.T) {
	tb, err := NewTable(map[string]any{"a": int32(7), "s": "hello", "b": true, "x": []byte{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		typ  byte
		want []byte
	}{
		{"a", 'I', []byte{0, 0, 0, 7}},
		{"s", 'S', []byte("hello")},
		{"b", 't', []byte{1}},
		{"x", 'x', []byte{1, 2}},
	} {
		typ, raw, ok, err := tb.Raw(tc.key)
		if err != nil || !ok || typ != tc.typ || !bytes.Equal(raw, tc.want) {
			t.Errorf("Raw(%q) = %q %v %v %v, want %q %v", tc.key, typ, raw, ok, err, tc.typ, tc.want)
		}
	}
	if _, _, ok, err := tb.Raw("missing"); ok || err != nil {
		t.Errorf("Raw(missing) = %v, %v", ok, err)
	}
	// Truncated: the string's length runs past the end.
	bad := Table{1, 's', 'S', 0, 0, 0, 9, 'h'}
	if _, _, ok, err := bad.Raw("s"); ok || !errors.Is(err, ErrMalformedTable) {
		t.Errorf("Raw of a truncated value = %v, %v, want ErrMalformedTable", ok, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _, _ = tb.Raw("x") }); n != 0 {
		t.Errorf("Raw allocates %v times", n)
	}
}
