package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/warrenmq/warren/amqpwire"
)

// MaxFrame bounds one frame's payload: a message of the largest size a node accepts
// (configs.MaxMaxMessageSize, just under 63 MiB) with its properties and names fits.
const MaxFrame = 64<<20 + 1<<16

// Frame types. B is the node a client is connected to, A the node that runs the queue.
const (
	tPublish   byte = 1  // B→A: id, flags (persistent, confirm), vhost, queue, exchange, key, props, body
	tPublishOk byte = 2  // A→B: id, result
	tConsume   byte = 3  // B→A: sub, flags (no-ack, exclusive), prefetch, credit, vhost, queue, tag, args
	tConsumeOk byte = 4  // A→B: sub, result
	tDeliver   byte = 5  // A→B: sub, delivery id, flags (redelivered), delivery count, exchange, key, props, body
	tSettle    byte = 6  // B→A: sub (0: a got message), delivery id, flags (op, multiple)
	tCredit    byte = 7  // B→A: sub, credit
	tCancel    byte = 8  // B→A: sub: no more deliveries (unacked ones stay unacked)
	tCancelled byte = 9  // A→B: sub, result (none: the answer to tCancel; else why A ended it)
	tClose     byte = 10 // B→A: sub: forget it, requeue what is unacked
	tGet       byte = 11 // B→A: id, flags (no-ack), vhost, queue
	tGetOk     byte = 12 // A→B: id, result, flags (has a message, redelivered), count, [delivery id, delivery count, exchange, key, props, body]
	tPurge     byte = 13 // B→A: id, vhost, queue
	tPurgeOk   byte = 14 // A→B: id, result, count
	tStats     byte = 15 // B→A: id, vhost, queue
	tStatsOk   byte = 16 // A→B: id, result, messages, consumers
	tPing      byte = 17 // both ways, every heartbeat interval: the sender is alive
	tNode      byte = 18 // B→A: id: A's report of itself
	tNodeOk    byte = 19 // A→B: id, result, report (Local.Node)
	tLast           = tNodeOk
)

// Flag bits.
const (
	fPersistent  byte = 1 // tPublish
	fConfirm     byte = 2 // tPublish
	fNoAck       byte = 1 // tConsume, tGet
	fExclusive   byte = 2 // tConsume
	fRedelivered byte = 1 // tDeliver, tGetOk
	fHas         byte = 2 // tGetOk
	fMultiple    byte = 4 // tSettle; its low two bits are the SettleOp
)

// Result kinds on the wire.
const (
	rOK         byte = 0
	rChannel    byte = 1 // an *amqpwire.ChannelError
	rConnection byte = 2 // an *amqpwire.ConnectionError
	rOther      byte = 3 // any other error (for a publish: a nack)
)

// result is an operation's outcome as carried on the wire.
type result struct {
	kind          byte
	code          uint16
	class, method uint16
	text          string
}

// frame is every frame type's fields; which are used depends on typ (see the constants).
type frame struct {
	typ      byte
	id       uint64 // request id or subscription id
	id2      uint64 // delivery id
	flags    byte
	n1, n2   uint32 // prefetch and credit; count; messages and consumers; delivery count (n1 in tDeliver, n2 in tGetOk)
	n3       uint32 // unacknowledged messages (tStatsOk)
	vhost    string // also a delivery's exchange
	queue    string // also a delivery's routing key
	exchange string // a publish's exchange; a consume's tag
	key      string // a publish's routing key
	props    []byte // raw content-header properties (flags and fields)
	body     []byte
	args     amqpwire.Table
	res      result
}

// errBadFrame is wrapped by every decoding failure.
var errBadFrame = errors.New("forward: malformed frame")

func appendStr8(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(b, byte(len(s))), s...)
}

func appendBytes32(b, v []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(v))), v...)
}

func appendResult(b []byte, r *result) []byte {
	b = append(b, r.kind)
	if r.kind == rOK {
		return b
	}
	b = binary.BigEndian.AppendUint16(b, r.code)
	b = binary.BigEndian.AppendUint16(b, r.class)
	b = binary.BigEndian.AppendUint16(b, r.method)
	return appendStr8(b, r.text)
}

// appendFrame appends f with its 4-byte length prefix.
func appendFrame(b []byte, f *frame) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, f.typ)
	b = binary.BigEndian.AppendUint64(b, f.id)
	switch f.typ {
	case tPublish:
		b = append(b, f.flags)
		b = appendStr8(appendStr8(b, f.vhost), f.queue)
		b = appendStr8(appendStr8(b, f.exchange), f.key)
		b = append(appendBytes32(b, f.props), f.body...)
	case tConsume:
		b = append(b, f.flags)
		b = binary.BigEndian.AppendUint32(b, f.n1)
		b = binary.BigEndian.AppendUint32(b, f.n2)
		b = appendStr8(appendStr8(b, f.vhost), f.queue)
		b = appendBytes32(appendStr8(b, f.exchange), f.args)
	case tDeliver:
		b = binary.BigEndian.AppendUint64(b, f.id2)
		b = append(b, f.flags)
		b = binary.BigEndian.AppendUint32(b, f.n1)
		b = appendStr8(appendStr8(b, f.vhost), f.queue)
		b = append(appendBytes32(b, f.props), f.body...)
	case tSettle:
		b = binary.BigEndian.AppendUint64(b, f.id2)
		b = append(b, f.flags)
	case tCredit:
		b = binary.BigEndian.AppendUint32(b, f.n1)
	case tCancel, tClose, tPing, tNode:
	case tNodeOk:
		b = append(appendResult(b, &f.res), f.body...)
	case tGet, tPurge, tStats:
		if f.typ == tGet {
			b = append(b, f.flags)
		}
		b = appendStr8(appendStr8(b, f.vhost), f.queue)
	case tPublishOk, tConsumeOk, tCancelled:
		b = appendResult(b, &f.res)
	case tPurgeOk, tStatsOk:
		b = appendResult(b, &f.res)
		b = binary.BigEndian.AppendUint32(b, f.n1)
		if f.typ == tStatsOk {
			b = binary.BigEndian.AppendUint32(b, f.n2)
			b = binary.BigEndian.AppendUint32(b, f.n3)
		}
	case tGetOk:
		b = appendResult(b, &f.res)
		b = append(b, f.flags)
		b = binary.BigEndian.AppendUint32(b, f.n1)
		if f.flags&fHas != 0 {
			b = binary.BigEndian.AppendUint64(b, f.id2)
			b = binary.BigEndian.AppendUint32(b, f.n2)
			b = appendStr8(appendStr8(b, f.vhost), f.queue)
			b = append(appendBytes32(b, f.props), f.body...)
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// decoder reads a frame's fields; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: %d bytes wanted, %d left", errBadFrame, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) str8() string { return string(d.take(int(d.u8()))) }

func (d *decoder) bytes32() []byte {
	n := d.u32()
	if uint64(n) > uint64(len(d.b)) {
		if d.err == nil {
			d.err = fmt.Errorf("%w: a field of %d bytes in %d", errBadFrame, n, len(d.b))
		}
		return nil
	}
	return d.take(int(n))
}

func (d *decoder) rest() []byte {
	v := d.b[:len(d.b):len(d.b)]
	d.b = nil
	return v
}

func (d *decoder) result() result {
	r := result{kind: d.u8()}
	if r.kind == rOK || d.err != nil {
		return r
	}
	if r.kind > rOther {
		d.err = fmt.Errorf("%w: result kind %d", errBadFrame, r.kind)
		return r
	}
	r.code, r.class, r.method = d.u16(), d.u16(), d.u16()
	r.text = d.str8()
	return r
}

// decodeFrame decodes one frame's payload (after the length prefix). Byte fields alias p.
func decodeFrame(p []byte) (frame, error) {
	d := decoder{b: p}
	f := frame{typ: d.u8(), id: d.u64()}
	switch f.typ {
	case tPublish:
		f.flags = d.u8()
		f.vhost, f.queue, f.exchange, f.key = d.str8(), d.str8(), d.str8(), d.str8()
		f.props = d.bytes32()
		f.body = d.rest()
	case tConsume:
		f.flags, f.n1, f.n2 = d.u8(), d.u32(), d.u32()
		f.vhost, f.queue, f.exchange = d.str8(), d.str8(), d.str8()
		if a := d.bytes32(); d.err == nil && len(a) > 0 {
			f.args = amqpwire.Table(a)
			if err := f.args.Validate(); err != nil {
				return f, fmt.Errorf("%w: consumer arguments: %w", errBadFrame, err)
			}
		}
	case tDeliver:
		f.id2, f.flags, f.n1 = d.u64(), d.u8(), d.u32()
		f.vhost, f.queue = d.str8(), d.str8()
		f.props = d.bytes32()
		f.body = d.rest()
	case tSettle:
		f.id2, f.flags = d.u64(), d.u8()
		if d.err == nil && SettleOp(f.flags&3) > Discard {
			return f, fmt.Errorf("%w: settle op %d", errBadFrame, f.flags&3)
		}
	case tCredit:
		f.n1 = d.u32()
	case tCancel, tClose, tPing, tNode:
	case tNodeOk:
		f.res = d.result()
		f.body = d.rest()
	case tGet, tPurge, tStats:
		if f.typ == tGet {
			f.flags = d.u8()
		}
		f.vhost, f.queue = d.str8(), d.str8()
	case tPublishOk, tConsumeOk, tCancelled:
		f.res = d.result()
	case tPurgeOk, tStatsOk:
		f.res = d.result()
		f.n1 = d.u32()
		if f.typ == tStatsOk {
			f.n2, f.n3 = d.u32(), d.u32()
		}
	case tGetOk:
		f.res, f.flags, f.n1 = d.result(), d.u8(), d.u32()
		if f.flags&fHas != 0 {
			f.id2, f.n2 = d.u64(), d.u32()
			f.vhost, f.queue = d.str8(), d.str8()
			f.props = d.bytes32()
			f.body = d.rest()
		}
	default:
		if d.err == nil {
			return f, fmt.Errorf("%w: unknown type %d", errBadFrame, f.typ)
		}
	}
	if d.err != nil {
		return f, fmt.Errorf("frame type %d: %w", f.typ, d.err)
	}
	if len(d.b) != 0 {
		return f, fmt.Errorf("%w: type %d with %d bytes left over", errBadFrame, f.typ, len(d.b))
	}
	return f, nil
}

// readFrame reads one length-prefixed frame from r into a new buffer.
func readFrame(r io.Reader, hdr *[4]byte) (frame, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return frame{}, fmt.Errorf("%w: %d bytes (at most %d)", errBadFrame, n, MaxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return decodeFrame(p)
}

// toResult is err as carried on the wire.
func toResult(err error) result {
	if err == nil {
		return result{}
	}
	var ce *amqpwire.ChannelError
	if errors.As(err, &ce) {
		return result{kind: rChannel, code: ce.Code, class: ce.ClassID, method: ce.MethodID, text: ce.Text}
	}
	var xe *amqpwire.ConnectionError
	if errors.As(err, &xe) {
		return result{kind: rConnection, code: xe.Code, class: xe.ClassID, method: xe.MethodID, text: xe.Text}
	}
	return result{kind: rOther, text: err.Error()}
}

// err is r as an error on the side that asked: AMQP errors come back as the same types, so
// the AMQP layer sends their codes and texts; other errors come back as *RemoteError.
func (r *result) err() error {
	switch r.kind {
	case rOK:
		return nil
	case rChannel:
		return &amqpwire.ChannelError{Code: r.code, Text: r.text, ClassID: r.class, MethodID: r.method}
	case rConnection:
		return &amqpwire.ConnectionError{Code: r.code, Text: r.text, ClassID: r.class, MethodID: r.method}
	default:
		return &RemoteError{Text: r.text}
	}
}
