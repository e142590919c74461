package store

import (
	"encoding/binary"
	"fmt"
)

// Value codecs. Every value starts with a version byte (recordV1); a decoder rejects any other
// version with ErrCorrupt, so a future format change adds a case instead of misreading old
// bytes. Decoders check every length against what is left before slicing and never allocate
// from a length they read; byte fields of decoded values alias the input.

const recordV1 = 1

// schemaVersion is the layout described in doc.go. Open refuses a directory whose 0x00 'v'
// record holds another number.
const schemaVersion = 1

// UserMeta bits of 'M' entries, so recovery and IndexQueue learn a record's kind from the
// LSM key entry alone, without reading the value.
const (
	metaRef       byte = 1 << 0 // the value is a ref record pointing at a 'P' body
	metaTransient byte = 1 << 1 // a non-persistent message paged out; deleted at Open
)

// Flag bits inside message and ref records.
const flagPersistent = 1 << 0

// Message record (an inline 'M' value, or a 'P' value):
//
//	version u8 | flags u8 | priority u8 | expiry i64 | exchange (u8 len) | routing key (u8 len)
//	| properties (uvarint len) | body (the rest)
const messageFixedLen = 1 + 1 + 1 + 8

// StoredSize is the size of m's stored record: the body plus its properties, exchange,
// routing key and a small header. QueueIndex.Bytes is the sum of these sizes over a queue's
// records (for a shared body, its 'P' record's size once per reference).
func (m *Message) StoredSize() int64 { return int64(messageRecordSize(m)) }

func messageRecordSize(m *Message) int {
	return messageFixedLen + 1 + len(m.Exchange) + 1 + len(m.RoutingKey) +
		uvarintLen(uint64(len(m.Properties))) + len(m.Properties) + len(m.Body)
}

func appendMessage(dst []byte, m *Message) ([]byte, error) {
	var flags byte
	if m.Persistent {
		flags |= flagPersistent
	}
	dst = append(dst, recordV1, flags, m.Priority)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Expiry))
	dst, err := appendName(dst, m.Exchange)
	if err != nil {
		return nil, err
	}
	if dst, err = appendName(dst, m.RoutingKey); err != nil {
		return nil, err
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Properties)))
	dst = append(dst, m.Properties...)
	return append(dst, m.Body...), nil
}

func decodeMessage(b []byte, m *Message) error {
	var in interner
	return in.decodeMessage(b, m)
}

// interner decodes messages, sharing the exchange and routing-key strings of consecutive
// messages that have the same ones (a page of a queue usually does).
type interner struct{ ex, rk string }

func (in *interner) decodeMessage(b []byte, m *Message) error {
	if len(b) < messageFixedLen || b[0] != recordV1 {
		return badValue("message", b)
	}
	m.Persistent = b[1]&flagPersistent != 0
	m.Priority = b[2]
	m.Expiry = int64(binary.BigEndian.Uint64(b[3:11]))
	rest := b[messageFixedLen:]
	ex, rest, ok := readShort(rest)
	if !ok {
		return badValue("message", b)
	}
	rk, rest, ok := readShort(rest)
	if !ok {
		return badValue("message", b)
	}
	m.Exchange, m.RoutingKey = intern(&in.ex, ex), intern(&in.rk, rk)
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) {
		return badValue("message", b)
	}
	rest = rest[w:]
	m.Properties = nilIfEmpty(rest[:n:n])
	m.Body = nilIfEmpty(rest[n:])
	return nil
}

// readShort reads a one-byte-length-prefixed string from the front of b.
func readShort(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := 1 + int(b[0])
	return b[1:n], b[n:], true
}

func intern(last *string, b []byte) string {
	if string(b) != *last { // compiled without allocating
		*last = string(b)
	}
	return *last
}

// Ref record (an 'M' value pointing at a shared body):
//
//	version u8 | flags u8 | msgID u64 | size u32 (the 'P' record's length)
const refRecordLen = 1 + 1 + 8 + 4

func appendRef(dst []byte, persistent bool, msgID uint64, size uint32) []byte {
	var flags byte
	if persistent {
		flags |= flagPersistent
	}
	dst = append(dst, recordV1, flags)
	dst = binary.BigEndian.AppendUint64(dst, msgID)
	return binary.BigEndian.AppendUint32(dst, size)
}

func decodeRef(b []byte) (msgID uint64, size uint32, err error) {
	if len(b) != refRecordLen || b[0] != recordV1 {
		return 0, 0, badValue("ref", b)
	}
	return binary.BigEndian.Uint64(b[2:10]), binary.BigEndian.Uint32(b[10:]), nil
}

// Deliveries record ('R'): version u8 | count u32.
func encodeDeliveries(n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{recordV1}, n)
}

func decodeDeliveries(b []byte) (uint32, error) {
	if len(b) != 5 || b[0] != recordV1 {
		return 0, badValue("deliveries", b)
	}
	return binary.BigEndian.Uint32(b[1:]), nil
}

// Queue record ('Q'): version u8 | id u64 | flags u8 (bit 0 auto-delete) | args (the rest).
func encodeQueue(q *Queue) []byte {
	v := make([]byte, 0, 10+len(q.Args))
	v = append(v, recordV1)
	v = binary.BigEndian.AppendUint64(v, q.ID)
	v = append(v, boolBit(q.AutoDelete, 0))
	return append(v, q.Args...)
}

func decodeQueue(b []byte, q *Queue) error {
	if len(b) < 10 || b[0] != recordV1 {
		return badValue("queue", b)
	}
	q.ID = binary.BigEndian.Uint64(b[1:9])
	q.AutoDelete = b[9]&1 != 0
	q.Args = nilIfEmpty(b[10:])
	return nil
}

// Exchange record ('E'): version u8 | flags u8 (bit 0 durable, 1 auto-delete, 2 internal)
// | kind (u8 len) | args (the rest).
func encodeExchange(x *Exchange) ([]byte, error) {
	v := make([]byte, 0, 3+len(x.Kind)+len(x.Args))
	v = append(v, recordV1, boolBit(x.Durable, 0)|boolBit(x.AutoDelete, 1)|boolBit(x.Internal, 2))
	v, err := appendName(v, x.Kind)
	if err != nil {
		return nil, err
	}
	return append(v, x.Args...), nil
}

func decodeExchange(b []byte, x *Exchange) error {
	if len(b) < 3 || b[0] != recordV1 {
		return badValue("exchange", b)
	}
	x.Durable, x.AutoDelete, x.Internal = b[1]&1 != 0, b[1]&2 != 0, b[1]&4 != 0
	kind, rest, ok := readName(b[2:])
	if !ok {
		return badValue("exchange", b)
	}
	x.Kind, x.Args = kind, nilIfEmpty(rest)
	return nil
}

// Binding record ('B'): version u8 | args (the rest). Everything else is in the key.
func encodeBinding(b *Binding) []byte {
	return append([]byte{recordV1}, b.Args...)
}

func decodeBinding(v []byte, b *Binding) error {
	if len(v) < 1 || v[0] != recordV1 {
		return badValue("binding", v)
	}
	b.Args = nilIfEmpty(v[1:])
	return nil
}

// Schema record (0x00 'v'): version u8 | schema u32.
func encodeSchema(v uint32) []byte { return binary.BigEndian.AppendUint32([]byte{recordV1}, v) }

func decodeSchema(b []byte) (uint32, error) {
	if len(b) != 5 || b[0] != recordV1 {
		return 0, badValue("schema version", b)
	}
	return binary.BigEndian.Uint32(b[1:]), nil
}

// Clean-shutdown record ('C'): version u8 | unix ms of the shutdown i64.
func encodeClean(unixMs int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{recordV1}, uint64(unixMs))
}

func boolBit(b bool, bit uint) byte {
	if b {
		return 1 << bit
	}
	return 0
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func badValue(what string, b []byte) error {
	if len(b) > 32 {
		b = b[:32]
	}
	return fmt.Errorf("%w: %s value % x", ErrCorrupt, what, b)
}
