package quorum

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/warrenmq/warren/store"
)

// Commands. A Raft log entry of a quorum queue's group is a batch of commands, applied in
// order:
//
//	entry   = version u8 (1) | command*
//	append  = 'A' | seq uvarint | expiry varint | exchange | routing key | properties | body
//	remove  = 'X' | seq uvarint
//	deliver = 'D' | seq uvarint | count uvarint
//	drop    = 'P' | after uvarint | through uvarint
//
// where a byte string is its length (uvarint) and its bytes. Every command sets or deletes
// keys of the store, so applying a suffix of the log again over the state it produced gives
// the same state.
const (
	cmdVersion = 1
	opAppend   = 'A'
	opRemove   = 'X'
	opDeliver  = 'D'
	opDrop     = 'P'
)

// command is one decoded command.
type command struct {
	op  byte
	seq uint64        // append, remove, deliver; drop: after
	n   uint64        // deliver: count; drop: through
	msg store.Message // append
}

var errCommand = errors.New("quorum: malformed command")

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeAppend appends an append command to b.
func encodeAppend(b []byte, seq uint64, m *store.Message) []byte {
	b = append(b, opAppend)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendVarint(b, m.Expiry)
	b = appendBytes(b, []byte(m.Exchange))
	b = appendBytes(b, []byte(m.RoutingKey))
	b = appendBytes(b, m.Properties)
	return appendBytes(b, m.Body)
}

func encodeRemove(b []byte, seq uint64) []byte {
	return binary.AppendUvarint(append(b, opRemove), seq)
}

func encodeDeliver(b []byte, seq uint64, n uint32) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(append(b, opDeliver), seq), uint64(n))
}

func encodeDrop(b []byte, after, through uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(append(b, opDrop), after), through)
}

// decoder reads a batch; its first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCommand, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what + " longer than the entry")
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// decodeBatch decodes a log entry. The messages' byte fields alias data.
func decodeBatch(data []byte) ([]command, error) {
	if len(data) == 0 || data[0] != cmdVersion {
		return nil, fmt.Errorf("%w: unknown version", errCommand)
	}
	d := decoder{b: data[1:]}
	var cmds []command
	for len(d.b) > 0 && d.err == nil {
		op := d.b[0]
		d.b = d.b[1:]
		c := command{op: op}
		switch op {
		case opAppend:
			c.seq = d.uvarint("append seq")
			c.msg.Expiry = d.varint("append expiry")
			c.msg.Exchange = string(d.bytes("exchange"))
			c.msg.RoutingKey = string(d.bytes("routing key"))
			c.msg.Properties = d.bytes("properties")
			c.msg.Body = d.bytes("body")
			c.msg.Persistent = true
		case opRemove:
			c.seq = d.uvarint("remove seq")
		case opDeliver:
			c.seq = d.uvarint("deliver seq")
			c.n = d.uvarint("delivery count")
			if c.n > uint64(^uint32(0)) {
				d.fail("delivery count out of range")
			}
		case opDrop:
			c.seq = d.uvarint("drop after")
			c.n = d.uvarint("drop through")
		default:
			d.fail(fmt.Sprintf("unknown command %#x", op))
		}
		if d.err == nil && op != opDrop && c.seq == 0 {
			d.fail("seq 0")
		}
		cmds = append(cmds, c)
	}
	if d.err != nil {
		return nil, d.err
	}
	return cmds, nil
}
