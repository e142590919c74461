package amqpwire

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// maxShortstr is the longest string a shortstr can carry.
const maxShortstr = 255

// argReader reads method arguments (and property lists) from a byte slice.
// The first failure is kept in err; after it every read returns a zero value,
// so generated code can read all fields and check once at the end.
type argReader struct {
	buf []byte
	err string // first failure, "" while all is well
}

func (r *argReader) fail(msg string) {
	if r.err == "" {
		r.err = msg
	}
	r.buf = nil
}

func (r *argReader) take(n uint64, what string) []byte {
	if r.err != "" {
		return nil
	}
	if uint64(len(r.buf)) < n {
		r.fail("truncated " + what)
		return nil
	}
	p := r.buf[:n]
	r.buf = r.buf[n:]
	return p
}

func (r *argReader) octet() uint8 {
	p := r.take(1, "octet")
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *argReader) short() uint16 {
	p := r.take(2, "short")
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (r *argReader) long() uint32 {
	p := r.take(4, "long")
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (r *argReader) longlong() uint64 {
	p := r.take(8, "longlong")
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

// shortstr reads a shortstr into a new string (never aliasing the input).
func (r *argReader) shortstr() string {
	n := r.octet()
	return string(r.take(uint64(n), "shortstr"))
}

// shortstrUTF8 reads a shortstr and requires valid UTF-8. RabbitMQ checks
// the shortstr arguments of every method that carries no content and
// answers 501 "Malformed UTF-8 in shortstr"; it skips the check for
// basic.publish/return/deliver/get-ok to keep publishing cheap.
func (r *argReader) shortstrUTF8(field string) string {
	n := r.octet()
	p := r.take(uint64(n), "shortstr")
	if p != nil && !utf8.Valid(p) {
		r.fail("malformed UTF-8 in shortstr '" + field + "'")
		return ""
	}
	return string(p)
}

// longstr reads a longstr into a new string.
func (r *argReader) longstr() string {
	n := r.long()
	return string(r.take(uint64(n), "longstr"))
}

// table reads a length-prefixed field table, checks its structure and
// returns a copy of its bytes.
func (r *argReader) table(field string) Table {
	n := r.long()
	p := r.take(uint64(n), "table")
	if p == nil {
		return nil
	}
	if err := Table(p).Validate(); err != nil {
		r.fail("table '" + field + "': " + err.Error())
		return nil
	}
	return cloneTable(p)
}

// finish reports the first failure, or trailing bytes, as the 501 answer
// RabbitMQ gives for method arguments it cannot decode
// (rabbit_misc:frame_error: "FRAME_ERROR - cannot decode ...").
func (r *argReader) finish(m Method) error {
	if r.err == "" && len(r.buf) != 0 {
		r.err = strconv.Itoa(len(r.buf)) + " trailing bytes"
	}
	if r.err == "" {
		return nil
	}
	return NewConnectionError(CodeFrameError, m.ClassID(), m.MethodID(),
		"cannot decode %s arguments: %s", m.MethodName(), r.err)
}

func appendShort(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

func appendLong(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendLonglong(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendShortstr appends s as a shortstr. A string longer than 255 bytes is
// cut to 255 bytes (backing off to a UTF-8 boundary) so that Append can never
// produce an invalid frame; callers that must not lose data validate lengths
// before encoding. The cut matters in practice only for reply texts, which
// carry caller-supplied detail.
func appendShortstr(b []byte, s string) []byte {
	s = truncateShortstr(s)
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func truncateShortstr(s string) string {
	if len(s) <= maxShortstr {
		return s
	}
	cut := maxShortstr
	// Back off over at most three continuation bytes so a multi-byte rune
	// is not split.
	for i := 0; i < 3 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut]
}

func appendLongstr(b []byte, s string) []byte {
	b = appendLong(b, uint32(len(s)))
	return append(b, s...)
}
