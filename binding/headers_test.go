package binding

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

// table builds a table with fields in the given order: key, value, key, value, ...
func table(t testing.TB, kv ...any) amqpwire.Table {
	t.Helper()
	var tb amqpwire.Table
	for i := 0; i < len(kv); i += 2 {
		var err error
		if tb, err = amqpwire.AppendField(tb, kv[i].(string), kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func TestHeadersMatch(t *testing.T) {
	nested := table(t, "k", "v", "n", int32(1))
	cases := []struct {
		name    string
		args    []any
		headers []any
		want    bool
	}{
		// x-match all (and its default).
		{"empty args match everything", nil, []any{"a", "1"}, true},
		{"empty args match no headers", nil, nil, true},
		{"all of one", []any{"x-match", "all", "a", "1"}, []any{"a", "1"}, true},
		{"default is all", []any{"a", "1", "b", "2"}, []any{"a", "1"}, false},
		{"all met", []any{"x-match", "all", "a", "1", "b", "2"}, []any{"b", "2", "c", "3", "a", "1"}, true},
		{"all, one differs", []any{"x-match", "all", "a", "1", "b", "2"}, []any{"a", "1", "b", "3"}, false},
		{"all, no headers", []any{"x-match", "all", "a", "1"}, nil, false},
		{"all with only x-match", []any{"x-match", "all"}, nil, true},
		// x-match any.
		{"any met by one", []any{"x-match", "any", "a", "1", "b", "2"}, []any{"b", "2"}, true},
		{"any met by none", []any{"x-match", "any", "a", "1", "b", "2"}, []any{"a", "2", "c", "1"}, false},
		{"any with no fields", []any{"x-match", "any"}, []any{"a", "1"}, false},
		{"any, no headers", []any{"x-match", "any", "a", "1"}, nil, false},
		// x- fields: ignored unless *-with-x.
		{"all ignores x- fields", []any{"x-match", "all", "x-foo", "1", "a", "1"}, []any{"a", "1"}, true},
		{"all ignores x- fields (only x-)", []any{"x-foo", "1"}, nil, true},
		{"any ignores x- fields", []any{"x-match", "any", "x-foo", "1"}, []any{"x-foo", "1"}, false},
		{"all-with-x uses x- fields", []any{"x-match", "all-with-x", "x-foo", "1", "a", "1"}, []any{"a", "1"}, false},
		{"all-with-x met", []any{"x-match", "all-with-x", "x-foo", "1", "a", "1"}, []any{"a", "1", "x-foo", "1"}, true},
		{"any-with-x met by x-", []any{"x-match", "any-with-x", "x-first-death-reason", "expired"}, []any{"x-first-death-reason", "expired"}, true},
		{"any-with-x not met", []any{"x-match", "any-with-x", "x-first-death-reason", "expired"}, []any{"x-first-death-reason", "rejected"}, false},
		{"with-x never compares x-match", []any{"x-match", "all-with-x"}, []any{"x-match", "any"}, true},
		{"X- is not x-", []any{"X-foo", "1"}, nil, false},
		// Void pattern values: presence.
		{"void means present", []any{"a", nil}, []any{"a", int32(5)}, true},
		{"void means present (void header)", []any{"a", nil}, []any{"a", nil}, true},
		{"void absent", []any{"a", nil}, []any{"b", "1"}, false},
		{"any with void", []any{"x-match", "any", "a", nil, "b", "2"}, []any{"a", "zzz"}, true},
		{"void header vs value", []any{"a", "1"}, []any{"a", nil}, false},
		// Typed comparison, Erlang ==.
		{"int widths", []any{"a", int8(5)}, []any{"a", int64(5)}, true},
		{"int widths 2", []any{"a", uint32(7)}, []any{"a", int16(7)}, true},
		{"int vs different int", []any{"a", int32(5)}, []any{"a", int32(6)}, false},
		{"int vs float equal", []any{"a", int32(1)}, []any{"a", float64(1)}, true},
		{"float vs int equal", []any{"a", float32(2)}, []any{"a", uint8(2)}, true},
		{"int vs float fraction", []any{"a", int32(1)}, []any{"a", 1.5}, false},
		{"float widths exact", []any{"a", float32(0.5)}, []any{"a", 0.5}, true},
		{"float32 0.1 is not float64 0.1", []any{"a", float32(0.1)}, []any{"a", 0.1}, false},
		{"negative zero", []any{"a", 0.0}, []any{"a", math.Copysign(0, -1)}, true},
		{"huge float vs int64", []any{"a", int64(math.MaxInt64)}, []any{"a", float64(math.MaxInt64)}, false},
		{"string vs bytes", []any{"a", "abc"}, []any{"a", []byte("abc")}, true},
		{"string vs string", []any{"a", "abc"}, []any{"a", "abd"}, false},
		{"string is case-sensitive", []any{"a", "abc"}, []any{"a", "ABC"}, false},
		{"string vs int", []any{"a", "1"}, []any{"a", int32(1)}, false},
		{"bool", []any{"a", true}, []any{"a", true}, true},
		{"bool differs", []any{"a", true}, []any{"a", false}, false},
		{"bool vs int", []any{"a", true}, []any{"a", int8(1)}, false},
		{"timestamp vs int", []any{"a", time.Unix(1700000000, 0)}, []any{"a", int64(1700000000)}, true},
		{"decimal", []any{"a", amqpwire.Decimal{Scale: 2, Value: 150}}, []any{"a", amqpwire.Decimal{Scale: 2, Value: 150}}, true},
		{"decimal other scale", []any{"a", amqpwire.Decimal{Scale: 2, Value: 150}}, []any{"a", amqpwire.Decimal{Scale: 1, Value: 15}}, false},
		{"decimal vs int", []any{"a", amqpwire.Decimal{Scale: 0, Value: 1}}, []any{"a", int32(1)}, false},
		{"table equal", []any{"a", nested}, []any{"a", table(t, "k", "v", "n", int32(1))}, true},
		{"table other int type", []any{"a", nested}, []any{"a", table(t, "k", "v", "n", int64(1))}, false},
		{"table other order", []any{"a", nested}, []any{"a", table(t, "n", int32(1), "k", "v")}, false},
		{"array equal", []any{"a", []any{"x", int32(1)}}, []any{"a", []any{"x", int32(1)}}, true},
		{"array other type", []any{"a", []any{"x", int32(1)}}, []any{"a", []any{"x", int64(1)}}, false},
		{"array other length", []any{"a", []any{"x"}}, []any{"a", []any{"x", "y"}}, false},
		// Repeated header keys: the first on the wire is met first.
		{"repeated header, first wins", []any{"a", "1"}, []any{"a", "1", "a", "2"}, true},
		{"repeated header, second ignored", []any{"a", "2"}, []any{"a", "1", "a", "2"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := CompileHeaders(table(t, c.args...))
			if err != nil {
				t.Fatal(err)
			}
			h := table(t, c.headers...)
			if got := m.Match(h); got != c.want {
				t.Errorf("Match = %v, want %v", got, c.want)
			}
			var hs HeaderSet
			if err := hs.Reset(h); err != nil {
				t.Fatal(err)
			}
			if got := m.MatchSet(&hs); got != c.want {
				t.Errorf("MatchSet = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCompileHeadersInvalid(t *testing.T) {
	cases := []struct {
		xmatch any
		want   string
	}{
		{"some", `Invalid x-match field value <<"some">>; expected all, any, all-with-x, or any-with-x`},
		{"ALL", `Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x`},
		{"", `Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x`},
		{int32(1), `Invalid x-match field type signedint (value 1); expected longstr`},
		{[]byte("all"), `Invalid x-match field type binary (value <<"all">>); expected longstr`},
		{true, `Invalid x-match field type bool (value true); expected longstr`},
		{"é", `Invalid x-match field value <<"é">>; expected all, any, all-with-x, or any-with-x`},
		{nil, `Invalid x-match field type void (value undefined); expected longstr`},
	}
	for _, c := range cases {
		_, err := CompileHeaders(table(t, "a", "1", "x-match", c.xmatch))
		if err == nil {
			t.Errorf("x-match %v: no error", c.xmatch)
			continue
		}
		if !errors.Is(err, ErrInvalidBinding) {
			t.Errorf("x-match %v: %v does not match ErrInvalidBinding", c.xmatch, err)
		}
		if err.Error() != c.want {
			t.Errorf("x-match %v:\n got %s\nwant %s", c.xmatch, err, c.want)
		}
	}
	if _, err := CompileHeaders(amqpwire.Table{3, 'a', 'b'}); err == nil || errors.Is(err, ErrInvalidBinding) {
		t.Errorf("malformed table: err = %v", err)
	}
}

func TestHeadersMalformedMessage(t *testing.T) {
	m, _ := CompileHeaders(table(t, "a", nil))
	if m.Match(amqpwire.Table{5, 'a'}) {
		t.Error("malformed headers matched")
	}
	var hs HeaderSet
	if hs.Reset(amqpwire.Table{1, 'a', 'S', 0, 0, 0, 9}) == nil || hs.Len() != 0 {
		t.Error("Reset of a malformed table: no error or not empty")
	}
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{"abc", `<<"abc">>`},
		{`a"b\`, `<<"a\"b\\">>`},
		{"é", `<<"é">>`},
		{[]byte{0, 1, 255}, `<<0,1,255>>`},
		{int8(-3), "-3"},
		{uint32(4000000000), "4000000000"},
		{1.0, "1.0"},
		{1.5, "1.5"},
		{float32(0.25), "0.25"},
		{1e-7, "1.0e-7"},
		{false, "false"},
		{nil, "undefined"},
		{amqpwire.Decimal{Scale: 2, Value: 150}, "{2,150}"},
		{time.Unix(5, 0), "5"},
		{[]any{"a", int32(1)}, `[{longstr,<<"a">>},{signedint,1}]`},
		{table(t, "k", "v"), `[{<<"k">>,longstr,<<"v">>}]`},
	}
	for _, c := range cases {
		if got := FormatValue(c.v); got != c.want {
			t.Errorf("FormatValue(%#v) = %s, want %s", c.v, got, c.want)
		}
	}
}

func TestArgsKey(t *testing.T) {
	a := table(t, "b", "2", "a", int32(1), "c", table(t, "y", "1", "x", "2"))
	b := table(t, "a", int32(1), "c", table(t, "y", "1", "x", "2"), "b", "2")
	ka, err := ArgsKey(a)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := ArgsKey(b)
	if ka != kb {
		t.Errorf("field order changed the key: %q vs %q", ka, kb)
	}
	for _, other := range []amqpwire.Table{
		table(t, "b", "2", "a", int64(1), "c", table(t, "y", "1", "x", "2")), // other int type
		table(t, "b", "2", "a", int32(1), "c", table(t, "x", "2", "y", "1")), // nested order
		table(t, "b", "2", "a", int32(1)),                                    // fewer fields
		table(t, "b", "2", "a", int32(1), "c", table(t, "y", "1", "x", "3")), // nested value
	} {
		if k, _ := ArgsKey(other); k == ka {
			t.Errorf("different args %v gave the same key", other)
		}
	}
	ha, _ := ArgsHash(a)
	hb, _ := ArgsHash(b)
	hn, _ := ArgsHash(nil)
	if ha != hb || ha == hn {
		t.Error("ArgsHash does not follow ArgsKey")
	}
	if _, err := ArgsHash(amqpwire.Table{1, 'a', 'Q'}); err == nil {
		t.Error("ArgsHash of a malformed table: no error")
	}
	if k, err := ArgsKey(nil); k != "" || err != nil {
		t.Errorf("ArgsKey(nil) = %q, %v", k, err)
	}
	if k, err := ArgsKey(amqpwire.Table{}); k != "" || err != nil {
		t.Errorf("ArgsKey(empty) = %q, %v", k, err)
	}
	if _, err := ArgsKey(amqpwire.Table{1, 'a', 'Q'}); err == nil {
		t.Error("malformed table: no error")
	}
	// 'L' is RabbitMQ's alias of 'l': same key.
	l := amqpwire.Table{1, 'a', 'l', 0, 0, 0, 0, 0, 0, 0, 9}
	L := amqpwire.Table{1, 'a', 'L', 0, 0, 0, 0, 0, 0, 0, 9}
	if kl, _ := ArgsKey(l); kl != mustKey(t, L) {
		t.Error("'l' and 'L' gave different keys")
	}
}

func mustKey(t *testing.T, tb amqpwire.Table) string {
	t.Helper()
	k, err := ArgsKey(tb)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
