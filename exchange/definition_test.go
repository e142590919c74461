package exchange

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

func TestDefinitionEquivalent(t *testing.T) {
	cur := Definition{Name: "logs", Kind: KindDirect, Durable: true,
		Args: table(t, "alternate-exchange", "ae", "x-other", "1")}
	same := func(edit func(*Definition)) Definition {
		d := cur
		edit(&d)
		return d
	}
	ok := []Definition{
		cur,
		same(func(d *Definition) { d.Args = table(t, "x-other", "2", "alternate-exchange", "ae") }), // other args ignored
		same(func(d *Definition) { d.Args = table(t, "alternate-exchange", []byte("ae")) }),         // identical bytes
	}
	for _, d := range ok {
		if err := cur.Equivalent("/", d); err != nil {
			t.Errorf("Equivalent(%+v) = %v", d, err)
		}
	}
	bad := []struct {
		other Definition
		want  string
	}{
		{same(func(d *Definition) { d.Kind = KindFanout }),
			"inequivalent arg 'type' for exchange 'logs' in vhost '/': received 'fanout' but current is 'direct'"},
		{same(func(d *Definition) { d.Durable = false }),
			"inequivalent arg 'durable' for exchange 'logs' in vhost '/': received 'false' but current is 'true'"},
		{same(func(d *Definition) { d.AutoDelete = true }),
			"inequivalent arg 'auto_delete' for exchange 'logs' in vhost '/': received 'true' but current is 'false'"},
		{same(func(d *Definition) { d.Internal = true }),
			"inequivalent arg 'internal' for exchange 'logs' in vhost '/': received 'true' but current is 'false'"},
		{same(func(d *Definition) { d.Kind, d.Durable = KindTopic, false }), // type is checked first
			"inequivalent arg 'type' for exchange 'logs' in vhost '/': received 'topic' but current is 'direct'"},
		{same(func(d *Definition) { d.Args = nil }),
			"inequivalent arg 'alternate-exchange' for exchange 'logs' in vhost '/': received none but current is the value 'ae' of type 'longstr'"},
		{same(func(d *Definition) { d.Args = table(t, "alternate-exchange", "ae2") }),
			"inequivalent arg 'alternate-exchange' for exchange 'logs' in vhost '/': received 'ae2' but current is 'ae'"},
		{same(func(d *Definition) { d.Args = table(t, "alternate-exchange", true) }),
			"inequivalent arg 'alternate-exchange' for exchange 'logs' in vhost '/': received 'true' but current is 'ae'"},
	}
	for _, c := range bad {
		err := cur.Equivalent("/", c.other)
		var ie *InequivalentError
		if !errors.Is(err, ErrInequivalent) || !errors.As(err, &ie) {
			t.Errorf("Equivalent(%+v) = %v, want an InequivalentError", c.other, err)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("\n got %s\nwant %s", err, c.want)
		}
	}

	// Received none vs current none is fine; an argument that only the redeclare has is not.
	plain := Definition{Name: "p", Kind: KindTopic}
	if err := plain.Equivalent("v", Definition{Name: "p", Kind: KindTopic, Args: table(t, "x-foo", "1")}); err != nil {
		t.Errorf("uncompared argument: %v", err)
	}
	err := plain.Equivalent("v", Definition{Name: "p", Kind: KindTopic, Args: table(t, "alternate-exchange", "ae")})
	if want := "inequivalent arg 'alternate-exchange' for exchange 'p' in vhost 'v': received the value 'ae' of type 'longstr' but current is none"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestArgTypeClasses follows rabbit_misc:assert_args_equivalence: integer widths are one class
// and compare by value, float and double another; otherwise only identical terms are equal.
func TestArgTypeClasses(t *testing.T) {
	cases := []struct {
		cur, recv any
		want      bool
	}{
		{int32(5), int64(5), true},
		{int8(5), uint16(5), true},
		{int32(5), int32(6), false},
		{int32(1), 1.0, false}, // int and float classes differ
		{float32(0.5), 0.5, true},
		{"a", "a", true},
		{"a", []byte("a"), true},
		{time.Unix(7, 0), int64(7), true},
		{int32(7), 7.0, false},
		{true, true, true},
		{true, int8(1), false},
		{amqpwire.Decimal{Scale: 1, Value: 5}, amqpwire.Decimal{Scale: 1, Value: 5}, true},
		{amqpwire.Decimal{Scale: 0, Value: 5}, int32(5), false},
	}
	for _, c := range cases {
		d := Definition{Name: "e", Kind: KindDirect, Args: table(t, "alternate-exchange", c.cur)}
		o := Definition{Name: "e", Kind: KindDirect, Args: table(t, "alternate-exchange", c.recv)}
		if got := d.Equivalent("/", o) == nil; got != c.want {
			t.Errorf("current %#v, received %#v: equivalent=%v, want %v (%v)", c.cur, c.recv, got, c.want, d.Equivalent("/", o))
		}
	}
	d := Definition{Name: "e", Kind: KindDirect, Args: table(t, "alternate-exchange", int32(7))}
	err := d.Equivalent("/", Definition{Name: "e", Kind: KindDirect, Args: table(t, "alternate-exchange", 7.5)})
	if want := "inequivalent arg 'alternate-exchange' for exchange 'e' in vhost '/': received '7.5' but current is '7'"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestPredeclared(t *testing.T) {
	want := map[string]Definition{
		"":                   {Kind: KindDirect},
		"amq.direct":         {Kind: KindDirect},
		"amq.fanout":         {Kind: KindFanout},
		"amq.topic":          {Kind: KindTopic},
		"amq.headers":        {Kind: KindHeaders},
		"amq.match":          {Kind: KindHeaders},
		"amq.rabbitmq.trace": {Kind: KindTopic, Internal: true},
	}
	got := Predeclared()
	if len(got) != len(want) {
		t.Fatalf("Predeclared has %d exchanges, want %d", len(got), len(want))
	}
	for _, d := range got {
		w, ok := want[d.Name]
		if !ok || d.Kind != w.Kind || d.Internal != w.Internal || !d.Durable || d.AutoDelete || d.Args != nil {
			t.Errorf("unexpected predeclared exchange %+v", d)
		}
		if !KnownKind(d.Kind) {
			t.Errorf("%q has kind %q that NewRouter refuses", d.Name, d.Kind)
		}
		delete(want, d.Name)
	}
	// Callers may change what they get without changing the next call's answer.
	got[0].Name = "changed"
	if Predeclared()[0].Name != "" {
		t.Error("Predeclared shares its slice")
	}
}

func TestDefinitionValidate(t *testing.T) {
	ok := []amqpwire.Table{nil, table(t, "alternate-exchange", "ae"), table(t, "x-foo", int32(1))}
	for _, args := range ok {
		d := Definition{Name: "logs", Kind: KindTopic, Args: args}
		if err := d.Validate("/"); err != nil {
			t.Errorf("Validate(%v) = %v", args, err)
		}
	}
	bad := []struct {
		v    any
		want string
	}{
		{int64(7), "invalid type 'long' for arg 'alternate-exchange' in exchange 'logs' in vhost 'v'"},
		{7.0, "invalid type 'double' for arg 'alternate-exchange' in exchange 'logs' in vhost 'v'"},
		{[]byte("ae"), "invalid type 'binary' for arg 'alternate-exchange' in exchange 'logs' in vhost 'v'"},
		{time.Unix(7, 0), "invalid type 'timestamp' for arg 'alternate-exchange' in exchange 'logs' in vhost 'v'"},
	}
	for _, c := range bad {
		d := Definition{Name: "logs", Kind: KindTopic, Args: table(t, "alternate-exchange", c.v)}
		err := d.Validate("v")
		if !errors.Is(err, ErrInvalidArgument) || err.Error() != c.want {
			t.Errorf("Validate(%#v) = %v, want %s", c.v, err, c.want)
		}
	}
	if name, ok := (Definition{Args: table(t, "alternate-exchange", "ae")}).AlternateExchange(); !ok || name != "ae" {
		t.Errorf("AlternateExchange = %q, %v", name, ok)
	}
	if _, ok := (Definition{Args: table(t, "alternate-exchange", int32(1))}).AlternateExchange(); ok {
		t.Error("AlternateExchange accepted a signedint")
	}
	if _, ok := (Definition{}).AlternateExchange(); ok {
		t.Error("AlternateExchange without the argument")
	}
}
