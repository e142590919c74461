package binding

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

// Headers exchanges route on the message's headers table instead of its routing key. Each
// binding's arguments are the pattern: x-match says how its other fields must be met
// (rabbit_exchange_type_headers):
//
//   - "all" (also when x-match is absent): every pattern field is met;
//   - "any": at least one pattern field is met;
//   - "all-with-x", "any-with-x": the same, but pattern fields whose names start with "x-"
//     take part too. Under "all" and "any" they are ignored; x-match itself always is.
//
// A pattern field is met when the message has a header of that name and either the pattern
// value is void (then presence is enough) or the two values are equal. Equality is Erlang's ==
// on the values RabbitMQ decodes, types aside: integers of every width and timestamps compare
// by numeric value, also against floats (1 equals 1.0); a float32 is widened exactly, so
// float32 0.1 does not equal float64 0.1; a longstr equals a byte array with the same bytes;
// booleans equal only booleans; decimals equal decimals with the same scale and value; nested
// tables and arrays are equal only field by field with the same types and order. So with no
// fields left to check "all" matches every message and "any" matches none.

// HeadersMatcher is one headers-exchange binding's arguments, compiled once. It is immutable
// and safe for concurrent use.
type HeadersMatcher struct {
	any     bool          // "any" or "any-with-x"; else "all" or "all-with-x"
	pattern []headerField // fields that take part, sorted by key (stable)
}

// headerField is one decoded field of a pattern or a message, its value reduced to what
// Erlang's == looks at.
type headerField struct {
	key string
	val fieldValue
}

type valueClass uint8

const (
	classVoid    valueClass = iota // 'V'
	classBool                      // 't'
	classInt                       // every integer width and 'T'
	classFloat                     // 'f', 'd'
	classBinary                    // 'S', 'x'
	classDecimal                   // 'D'
	classNested                    // 'F', 'A': compared with their types
)

type fieldValue struct {
	class valueClass
	b     bool
	i     int64
	f     float64
	s     string
	dec   amqpwire.Decimal
	raw   any // classNested
}

func reduce(v any) fieldValue {
	switch v := v.(type) {
	case nil:
		return fieldValue{class: classVoid}
	case bool:
		return fieldValue{class: classBool, b: v}
	case int8:
		return fieldValue{class: classInt, i: int64(v)}
	case uint8:
		return fieldValue{class: classInt, i: int64(v)}
	case int16:
		return fieldValue{class: classInt, i: int64(v)}
	case uint16:
		return fieldValue{class: classInt, i: int64(v)}
	case int32:
		return fieldValue{class: classInt, i: int64(v)}
	case uint32:
		return fieldValue{class: classInt, i: int64(v)}
	case int64:
		return fieldValue{class: classInt, i: v}
	case time.Time:
		return fieldValue{class: classInt, i: v.Unix()}
	case float32:
		return fieldValue{class: classFloat, f: float64(v)}
	case float64:
		return fieldValue{class: classFloat, f: v}
	case string:
		return fieldValue{class: classBinary, s: v}
	case []byte:
		return fieldValue{class: classBinary, s: string(v)}
	case amqpwire.Decimal:
		return fieldValue{class: classDecimal, dec: v}
	}
	return fieldValue{class: classNested, raw: v}
}

// equal is Erlang's == on the decoded values.
func (a *fieldValue) equal(b *fieldValue) bool {
	switch {
	case a.class == classInt && b.class == classFloat:
		return intEqualsFloat(a.i, b.f)
	case a.class == classFloat && b.class == classInt:
		return intEqualsFloat(b.i, a.f)
	case a.class != b.class:
		return false
	}
	switch a.class {
	case classVoid:
		return true
	case classBool:
		return a.b == b.b
	case classInt:
		return a.i == b.i
	case classFloat:
		return a.f == b.f
	case classBinary:
		return a.s == b.s
	case classDecimal:
		return a.dec == b.dec
	}
	return typedEqual(a.raw, b.raw)
}

// intEqualsFloat compares exactly, as Erlang does: no rounding of large integers.
func intEqualsFloat(i int64, f float64) bool {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return false
	}
	return int64(f) == i
}

// typedEqual compares values nested in tables and arrays, where RabbitMQ keeps each value's
// type next to it, so the types must agree as well as the values.
func typedEqual(a, b any) bool {
	if amqpwire.TypeOf(a) != amqpwire.TypeOf(b) {
		return false
	}
	switch a := a.(type) {
	case amqpwire.Table:
		b, ok := b.(amqpwire.Table)
		return ok && tablesEqual(a, b)
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !typedEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	ra, rb := reduce(a), reduce(b)
	return ra.equal(&rb)
}

func tablesEqual(a, b amqpwire.Table) bool {
	type kv struct {
		k string
		v any
	}
	collect := func(t amqpwire.Table) ([]kv, bool) {
		var out []kv
		err := t.Each(func(k string, v any) error {
			out = append(out, kv{k, v})
			return nil
		})
		return out, err == nil
	}
	fa, okA := collect(a)
	fb, okB := collect(b)
	if !okA || !okB || len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i].k != fb[i].k || !typedEqual(fa[i].v, fb[i].v) {
			return false
		}
	}
	return true
}

// CompileHeaders compiles a headers-exchange binding's arguments. An x-match value that is not
// one of the four modes, or not a longstr, is refused with an error matching ErrInvalidBinding
// whose text is RabbitMQ's (validate_binding), e.g.
// `Invalid x-match field value <<"some">>; expected all, any, all-with-x, or any-with-x`.
// A malformed table gives the table's error.
func CompileHeaders(args amqpwire.Table) (*HeadersMatcher, error) {
	m := &HeadersMatcher{}
	withX := false
	xm, ok, err := args.Get("x-match")
	if err != nil {
		return nil, err
	}
	if ok {
		s, isString := xm.(string)
		if !isString {
			return nil, &invalidBindingError{"Invalid x-match field type " + TypeName(xm) +
				" (value " + FormatValue(xm) + "); expected longstr"}
		}
		switch s {
		case "all":
		case "any":
			m.any = true
		case "all-with-x":
			withX = true
		case "any-with-x":
			m.any, withX = true, true
		default:
			return nil, &invalidBindingError{"Invalid x-match field value " + FormatValue(s) +
				"; expected all, any, all-with-x, or any-with-x"}
		}
	}
	err = args.Each(func(k string, v any) error {
		if k == "x-match" || (!withX && strings.HasPrefix(k, "x-")) {
			return nil
		}
		m.pattern = append(m.pattern, headerField{key: k, val: reduce(v)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(m.pattern, compareFieldKey)
	return m, nil
}

func compareFieldKey(a, b headerField) int { return strings.Compare(a.key, b.key) }

// Match reports whether a message with these headers matches the binding. Malformed headers
// (which amqpwire's property decoder already refuses) fail every field. To test one message against many bindings, decode its headers once into a
// HeaderSet and use MatchSet.
func (m *HeadersMatcher) Match(headers amqpwire.Table) bool {
	if len(m.pattern) == 0 {
		return !m.any
	}
	var hs HeaderSet
	if hs.Reset(headers) != nil {
		return false
	}
	return m.MatchSet(&hs)
}

// MatchSet is Match on headers already decoded.
func (m *HeadersMatcher) MatchSet(h *HeaderSet) bool {
	// A merge of two key-sorted lists, as RabbitMQ's headers_match: a pattern field and a
	// header with the same key consume each other, so repeated keys pair up in order.
	j := 0
	for i := range m.pattern {
		p := &m.pattern[i]
		for j < len(h.fields) && h.fields[j].key < p.key {
			j++
		}
		met := false
		if j < len(h.fields) && h.fields[j].key == p.key {
			met = p.val.class == classVoid || p.val.equal(&h.fields[j].val)
			j++
		}
		if met == m.any {
			// First field met under any, or first one missed under all, decides.
			return met
		}
	}
	return !m.any
}

// HeaderSet is a message's headers decoded once and sorted by key, for matching against many
// bindings. The zero value is empty and ready to use; reusing one across messages reuses its
// memory. It is not safe for concurrent use.
type HeaderSet struct {
	fields []headerField
}

// Reset decodes headers into s, replacing what it held. On a malformed table s is left empty
// and the table's error is returned.
func (s *HeaderSet) Reset(headers amqpwire.Table) error {
	clear(s.fields)
	s.fields = s.fields[:0]
	err := headers.Each(func(k string, v any) error {
		s.fields = append(s.fields, headerField{key: k, val: reduce(v)})
		return nil
	})
	if err != nil {
		s.fields = s.fields[:0]
		return err
	}
	// Stable, so that of repeated keys the first on the wire is met first, as in RabbitMQ.
	slices.SortStableFunc(s.fields, compareFieldKey)
	return nil
}

// Len returns the number of decoded headers.
func (s *HeaderSet) Len() int { return len(s.fields) }

// EqualValues reports whether two decoded field values are equal the way RabbitMQ compares
// them, with Erlang's == on the terms it decodes (the rules at the top of this file): 1 equals
// int64(1), 1.0 and a timestamp of 1 second; "a" equals []byte("a").
func EqualValues(a, b any) bool {
	ra, rb := reduce(a), reduce(b)
	return ra.equal(&rb)
}
