package amqpwire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// MaxTableDepth is how deeply tables and arrays may nest (a top-level table
// is depth 1). Deeper input is rejected on decode and on encode, so a hostile
// peer cannot make the decoder recurse without bound.
const MaxTableDepth = 64

// Table is an AMQP field table kept in its wire encoding: the field-value
// pairs without the 4-byte length prefix. nil and empty are the empty table.
// Values are decoded only when asked for (Get, Each, Map), so routing on one
// header does not pay for decoding the others.
//
// Decoded value types, one per wire type (RabbitMQ's variant of the field
// types, see the 0-9-1 errata): 't' bool, 'b' int8, 'B' uint8, 's' int16,
// 'u' uint16, 'I' int32, 'i' uint32, 'l' int64, 'f' float32, 'd' float64,
// 'D' Decimal, 'S' string, 'x' []byte, 'A' []any, 'T' time.Time (UTC, whole
// seconds), 'F' Table, 'V' nil. Like RabbitMQ the decoder also accepts 'L'
// as a signed 64-bit integer (int64). Decoded strings, byte slices and
// nested tables are copies: they never alias the table's bytes.
//
// Keys may repeat on the wire; Get returns the first, as RabbitMQ does.
type Table []byte

// Decimal is the 'D' field type: Value × 10^-Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Get returns the value of the first field named key. ok is false when the
// key is absent; err is set when the table is malformed before the key is
// found or the value itself is malformed.
func (t Table) Get(key string) (v any, ok bool, err error) {
	b := []byte(t)
	for len(b) > 0 {
		k, typ, rest, err := readFieldHeader(b)
		if err != nil {
			return nil, false, err
		}
		if string(k) == key {
			v, _, err := decodeValue(rest, typ, 1)
			if err != nil {
				return nil, false, err
			}
			return v, true, nil
		}
		if b, err = skipValue(rest, typ); err != nil {
			return nil, false, err
		}
	}
	return nil, false, nil
}

// Each calls fn for every field in wire order, stopping at the first error
// from the table or from fn.
func (t Table) Each(fn func(key string, v any) error) error {
	b := []byte(t)
	for len(b) > 0 {
		k, typ, rest, err := readFieldHeader(b)
		if err != nil {
			return err
		}
		v, rest, err := decodeValue(rest, typ, 1)
		if err != nil {
			return err
		}
		if err := fn(string(k), v); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// Map decodes the whole table. For a repeated key the first value wins.
func (t Table) Map() (map[string]any, error) {
	m := make(map[string]any)
	err := t.Each(func(k string, v any) error {
		if _, dup := m[k]; !dup {
			m[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Len returns the number of fields; on a malformed table it counts the
// fields before the first error (Validate tells whether there is one).
func (t Table) Len() int {
	n := 0
	b := []byte(t)
	for len(b) > 0 {
		_, typ, rest, err := readFieldHeader(b)
		if err != nil {
			return n
		}
		if b, err = skipValue(rest, typ); err != nil {
			return n
		}
		n++
	}
	return n
}

// Validate checks the whole structure, nested tables and arrays included,
// with the MaxTableDepth limit. The method and property decoders call it on
// every table they read, so tables they return are known to be well formed.
func (t Table) Validate() error {
	return validateTable(t, 1)
}

func validateTable(b []byte, depth int) error {
	if depth > MaxTableDepth {
		return ErrTableTooDeep
	}
	for len(b) > 0 {
		_, typ, rest, err := readFieldHeader(b)
		if err != nil {
			return err
		}
		if b, err = validateValue(rest, typ, depth); err != nil {
			return err
		}
	}
	return nil
}

func validateArray(b []byte, depth int) error {
	if depth > MaxTableDepth {
		return ErrTableTooDeep
	}
	for len(b) > 0 {
		typ := b[0]
		var err error
		if b, err = validateValue(b[1:], typ, depth); err != nil {
			return err
		}
	}
	return nil
}

// validateValue checks one value of type typ at the start of b, recursing
// into nested tables and arrays, and returns the bytes after it.
func validateValue(b []byte, typ byte, depth int) ([]byte, error) {
	switch typ {
	case 'F', 'A':
		body, rest, err := lengthPrefixed(b, typ)
		if err != nil {
			return nil, err
		}
		if typ == 'F' {
			err = validateTable(body, depth+1)
		} else {
			err = validateArray(body, depth+1)
		}
		return rest, err
	}
	return skipValue(b, typ)
}

// fixedSize is the encoded size of the fixed-width field types; 0 for the
// variable-size ones and for unknown type octets.
func fixedSize(typ byte) int {
	switch typ {
	case 'V':
		return 0
	case 't', 'b', 'B':
		return 1
	case 's', 'u':
		return 2
	case 'I', 'i', 'f':
		return 4
	case 'D':
		return 5
	case 'l', 'L', 'd', 'T':
		return 8
	}
	return -1
}

// skipValue returns the bytes after one value of type typ, checking only
// lengths (not the content of nested tables and arrays).
func skipValue(b []byte, typ byte) ([]byte, error) {
	switch typ {
	case 'S', 'x', 'F', 'A':
		_, rest, err := lengthPrefixed(b, typ)
		return rest, err
	}
	n := fixedSize(typ)
	if n < 0 {
		return nil, fmt.Errorf("%w: unknown field type %q", ErrMalformedTable, typ)
	}
	if len(b) < n {
		return nil, fmt.Errorf("%w: truncated %q value", ErrMalformedTable, typ)
	}
	return b[n:], nil
}

// lengthPrefixed splits a long-length-prefixed value off b. The length is
// checked against the bytes that remain before anything is sliced.
func lengthPrefixed(b []byte, typ byte) (body, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%w: truncated %q length", ErrMalformedTable, typ)
	}
	n := uint64(binary.BigEndian.Uint32(b))
	b = b[4:]
	if uint64(len(b)) < n {
		return nil, nil, fmt.Errorf("%w: %q length %d exceeds the %d bytes left", ErrMalformedTable, typ, n, len(b))
	}
	return b[:n], b[n:], nil
}

// readFieldHeader reads a field name (shortstr) and its type octet.
func readFieldHeader(b []byte) (key []byte, typ byte, rest []byte, err error) {
	n := int(b[0]) // callers guarantee len(b) > 0
	if len(b) < 1+n+1 {
		return nil, 0, nil, fmt.Errorf("%w: truncated field name or type", ErrMalformedTable)
	}
	return b[1 : 1+n], b[1+n], b[2+n:], nil
}

// decodeValue decodes one value of type typ at the start of b.
func decodeValue(b []byte, typ byte, depth int) (any, []byte, error) {
	if depth > MaxTableDepth {
		return nil, nil, ErrTableTooDeep
	}
	switch typ {
	case 'S', 'x', 'F', 'A':
		body, rest, err := lengthPrefixed(b, typ)
		if err != nil {
			return nil, nil, err
		}
		switch typ {
		case 'S':
			return string(body), rest, nil
		case 'x':
			return slices.Clone(body), rest, nil
		case 'F':
			if err := validateTable(body, depth+1); err != nil {
				return nil, nil, err
			}
			return cloneTable(body), rest, nil
		}
		arr, err := decodeArray(body, depth+1)
		return arr, rest, err
	}
	n := fixedSize(typ)
	if n < 0 {
		return nil, nil, fmt.Errorf("%w: unknown field type %q", ErrMalformedTable, typ)
	}
	if len(b) < n {
		return nil, nil, fmt.Errorf("%w: truncated %q value", ErrMalformedTable, typ)
	}
	p, rest := b[:n], b[n:]
	switch typ {
	case 't':
		return p[0] != 0, rest, nil
	case 'b':
		return int8(p[0]), rest, nil
	case 'B':
		return p[0], rest, nil
	case 's':
		return int16(binary.BigEndian.Uint16(p)), rest, nil
	case 'u':
		return binary.BigEndian.Uint16(p), rest, nil
	case 'I':
		return int32(binary.BigEndian.Uint32(p)), rest, nil
	case 'i':
		return binary.BigEndian.Uint32(p), rest, nil
	case 'l', 'L':
		return int64(binary.BigEndian.Uint64(p)), rest, nil
	case 'f':
		return math.Float32frombits(binary.BigEndian.Uint32(p)), rest, nil
	case 'd':
		return math.Float64frombits(binary.BigEndian.Uint64(p)), rest, nil
	case 'D':
		return Decimal{Scale: p[0], Value: int32(binary.BigEndian.Uint32(p[1:]))}, rest, nil
	case 'T':
		return time.Unix(int64(binary.BigEndian.Uint64(p)), 0).UTC(), rest, nil
	}
	return nil, rest, nil // 'V'
}

func decodeArray(b []byte, depth int) ([]any, error) {
	if depth > MaxTableDepth {
		return nil, ErrTableTooDeep
	}
	arr := []any{}
	for len(b) > 0 {
		v, rest, err := decodeValue(b[1:], b[0], depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		b = rest
	}
	return arr, nil
}

func cloneTable(b []byte) Table {
	if len(b) == 0 {
		return nil
	}
	return Table(slices.Clone(b))
}

// ReadTable reads a length-prefixed table from the start of b, checks its
// structure and returns a copy of it and the bytes after it.
func ReadTable(b []byte) (t Table, rest []byte, err error) {
	body, rest, err := lengthPrefixed(b, 'F')
	if err != nil {
		return nil, nil, err
	}
	if err := validateTable(body, 1); err != nil {
		return nil, nil, err
	}
	return cloneTable(body), rest, nil
}

// AppendTable appends t with its 4-byte length prefix, as a table-typed
// method argument or property is encoded.
func AppendTable(b []byte, t Table) []byte {
	b = appendLong(b, uint32(len(t)))
	return append(b, t...)
}

// NewTable encodes m as a table, keys in sorted order so that equal maps
// give equal bytes.
func NewTable(m map[string]any) (Table, error) {
	return newTableDepth(m, 1)
}

func newTableDepth(m map[string]any, depth int) (Table, error) {
	if depth > MaxTableDepth {
		return nil, ErrTableTooDeep
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var t Table
	for _, k := range keys {
		var err error
		if t, err = appendFieldDepth(t, k, m[k], depth); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// AppendField appends one field to t and returns the extended table. It
// accepts the decoded value types listed on Table plus int (encoded as 'l'),
// uint64 ('l' when it fits in an int64, else an error), uint ('l', likewise),
// map[string]any ('F') and Table ('F', copied as is).
func AppendField(t Table, key string, v any) (Table, error) {
	return appendFieldDepth(t, key, v, 1)
}

func appendFieldDepth(t Table, key string, v any, depth int) (Table, error) {
	if len(key) > maxShortstr {
		return t, fmt.Errorf("%w: field name of %d bytes is longer than 255", ErrUnsupportedValue, len(key))
	}
	start := len(t)
	b := append([]byte(t), byte(len(key)))
	b = append(b, key...)
	b, err := appendValue(b, v, depth)
	if err != nil {
		return t[:start], err
	}
	return Table(b), nil
}

// TypeOf returns the field-type octet a value decodes from or encodes to
// ('S' for a string, 'l' for an int, ...), or 0 when the value has no
// field type.
func TypeOf(v any) byte {
	switch v := v.(type) {
	case nil:
		return 'V'
	case bool:
		return 't'
	case int8:
		return 'b'
	case uint8:
		return 'B'
	case int16:
		return 's'
	case uint16:
		return 'u'
	case int32:
		return 'I'
	case uint32:
		return 'i'
	case int64, int:
		return 'l'
	case uint64:
		if v > math.MaxInt64 {
			return 0
		}
		return 'l'
	case uint:
		if uint64(v) > math.MaxInt64 {
			return 0
		}
		return 'l'
	case float32:
		return 'f'
	case float64:
		return 'd'
	case Decimal:
		return 'D'
	case string:
		return 'S'
	case []byte:
		return 'x'
	case []any:
		return 'A'
	case time.Time:
		return 'T'
	case Table, map[string]any:
		return 'F'
	}
	return 0
}

// appendValue appends the type octet and encoding of v.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > MaxTableDepth {
		return b, ErrTableTooDeep
	}
	typ := TypeOf(v)
	if typ == 0 {
		return b, fmt.Errorf("%w: %T", ErrUnsupportedValue, v)
	}
	b = append(b, typ)
	switch v := v.(type) {
	case nil:
	case bool:
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case int8:
		b = append(b, byte(v))
	case uint8:
		b = append(b, v)
	case int16:
		b = appendShort(b, uint16(v))
	case uint16:
		b = appendShort(b, v)
	case int32:
		b = appendLong(b, uint32(v))
	case uint32:
		b = appendLong(b, v)
	case int64:
		b = appendLonglong(b, uint64(v))
	case int:
		b = appendLonglong(b, uint64(v))
	case uint64:
		b = appendLonglong(b, v)
	case uint:
		b = appendLonglong(b, uint64(v))
	case float32:
		b = appendLong(b, math.Float32bits(v))
	case float64:
		b = appendLonglong(b, math.Float64bits(v))
	case Decimal:
		b = append(b, v.Scale)
		b = appendLong(b, uint32(v.Value))
	case string:
		if uint64(len(v)) > math.MaxUint32 {
			return b, fmt.Errorf("%w: string too long", ErrUnsupportedValue)
		}
		b = appendLongstr(b, v)
	case []byte:
		if uint64(len(v)) > math.MaxUint32 {
			return b, fmt.Errorf("%w: byte array too long", ErrUnsupportedValue)
		}
		b = appendLong(b, uint32(len(v)))
		b = append(b, v...)
	case time.Time:
		b = appendLonglong(b, uint64(v.Unix()))
	case Table:
		if err := validateTable(v, depth+1); err != nil {
			return b, err
		}
		b = AppendTable(b, v)
	case map[string]any:
		nested, err := newTableDepth(v, depth+1)
		if err != nil {
			return b, err
		}
		b = AppendTable(b, nested)
	case []any:
		lenAt := len(b)
		b = appendLong(b, 0)
		for _, e := range v {
			var err error
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		binary.BigEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	}
	return b, nil
}
