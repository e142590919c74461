package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Segment records: the on-disk form of a held message, in a time slice's segment file and in
// the delayed-message journal (delayedlog.go). Each record is framed
//
//	payload length u32 | CRC-32C of the payload u32 | payload
//
// and the payload is
//
//	version u8 | vhost (u8 len) | exchange (u8 len) | due i64 | seq u64 | ttl i64
//	| key count uvarint | keys (u8 len each) | message record (records.go)
//
// A segment file also holds delivery marks: the sequence numbers of held messages that were
// delivered, so that a restart does not deliver them again:
//
//	segMark u8 | count uvarint | seq u64 × count
//
// Files are only appended to, a whole record per write, so a crash mid-write leaves a
// readable prefix: scanSegment stops at the first frame that is short or fails its checksum
// (a torn tail) and reports how long the valid prefix is.

const (
	segV1        = 1
	segMark      = 2
	segFrameHead = 8
	// segFixedLen is the payload's fixed part after the two names: due, seq and TTL.
	segFixedLen = 8 + 8 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendSegRecord appends d's framed record to dst.
func appendSegRecord(dst []byte, vhost, exchange string, d *Delayed) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, segFrameHead)...)
	dst = append(dst, segV1)
	var err error
	if dst, err = appendName(dst, vhost); err != nil {
		return nil, err
	}
	if dst, err = appendName(dst, exchange); err != nil {
		return nil, err
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.Due))
	dst = binary.BigEndian.AppendUint64(dst, d.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.TTL))
	dst = binary.AppendUvarint(dst, uint64(len(d.Keys)))
	for _, k := range d.Keys {
		if dst, err = appendName(dst, k); err != nil {
			return nil, err
		}
	}
	if dst, err = appendMessage(dst, &d.Msg); err != nil {
		return nil, err
	}
	payload := dst[start+segFrameHead:]
	if len(payload) > maxRecord {
		return nil, fmt.Errorf("%w: held message record of %d bytes (at most %d)", ErrInvalid, len(payload), maxRecord)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst, nil
}

// appendSegMark appends a framed delivery mark of seqs to dst.
func appendSegMark(dst []byte, seqs []uint64) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, segFrameHead)...)
	dst = append(dst, segMark)
	dst = binary.AppendUvarint(dst, uint64(len(seqs)))
	for _, q := range seqs {
		dst = binary.BigEndian.AppendUint64(dst, q)
	}
	payload := dst[start+segFrameHead:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// parseSegMark calls fn with each seq of a delivery mark's payload.
func parseSegMark(p []byte, fn func(seq uint64)) error {
	if len(p) < 1 || p[0] != segMark {
		return badValue("delivery mark", p)
	}
	n, w := binary.Uvarint(p[1:])
	if w <= 0 || n != uint64(len(p)-1-w)/8 || uint64(len(p)-1-w)%8 != 0 {
		return badValue("delivery mark", p)
	}
	for b := p[1+w:]; len(b) >= 8; b = b[8:] {
		fn(binary.BigEndian.Uint64(b))
	}
	return nil
}

// isSegMark says a payload is a delivery mark rather than a held message.
func isSegMark(p []byte) bool { return len(p) > 0 && p[0] == segMark }

// scanSegment calls fn with each record in b (the whole frame, and its payload), in file
// order, and returns the length of the valid prefix: it stops at a frame that is cut short,
// longer than any record may be, or whose checksum does not match. An error from fn stops the
// scan before that record and is returned.
func scanSegment(b []byte, fn func(frame, payload []byte) error) (int, error) {
	off := 0
	for len(b)-off >= segFrameHead {
		n := binary.BigEndian.Uint32(b[off:])
		if n == 0 || n > maxRecord || uint64(len(b)-off-segFrameHead) < uint64(n) {
			break
		}
		payload := b[off+segFrameHead : off+segFrameHead+int(n)]
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[off+4:]) {
			break
		}
		if err := fn(b[off:off+segFrameHead+int(n)], payload); err != nil {
			return off, err
		}
		off += segFrameHead + int(n)
	}
	return off, nil
}

// segHeader is what recovery and reads need of a record without decoding its message.
type segHeader struct {
	vhost, exchange []byte // alias the payload
	due             int64
	seq             uint64
	persistent      bool
}

// parseSegHeader reads a payload's header. The persistent flag is the message record's.
func parseSegHeader(p []byte) (segHeader, []byte, error) {
	var h segHeader
	if len(p) < 1 || p[0] != segV1 {
		return h, nil, badValue("held message", p)
	}
	var ok bool
	rest := p[1:]
	if h.vhost, rest, ok = readShort(rest); !ok {
		return h, nil, badValue("held message", p)
	}
	if h.exchange, rest, ok = readShort(rest); !ok {
		return h, nil, badValue("held message", p)
	}
	if len(rest) < segFixedLen {
		return h, nil, badValue("held message", p)
	}
	h.due = int64(binary.BigEndian.Uint64(rest))
	h.seq = binary.BigEndian.Uint64(rest[8:])
	rest = rest[16:] // the TTL stays for decodeSegRecord
	// The message record's flags byte follows the keys; find it without decoding them.
	nk, w := binary.Uvarint(rest[8:])
	if w <= 0 || nk > uint64(len(rest)) {
		return h, nil, badValue("held message", p)
	}
	keys := rest[8+w:]
	for range nk {
		if _, keys, ok = readShort(keys); !ok {
			return h, nil, badValue("held message", p)
		}
	}
	if len(keys) < messageFixedLen {
		return h, nil, badValue("held message", p)
	}
	h.persistent = keys[1]&flagPersistent != 0
	return h, rest, nil
}

// decodeSegRecord decodes a payload into d. The byte fields of d.Msg alias p.
func decodeSegRecord(p []byte, d *Delayed) (segHeader, error) {
	h, rest, err := parseSegHeader(p)
	if err != nil {
		return h, err
	}
	d.Due, d.Seq = h.due, h.seq
	d.TTL = int64(binary.BigEndian.Uint64(rest))
	nk, w := binary.Uvarint(rest[8:])
	rest = rest[8+w:]
	d.Keys = make([]string, 0, nk)
	for range nk {
		k, r, _ := readShort(rest) // checked by parseSegHeader
		d.Keys = append(d.Keys, string(k))
		rest = r
	}
	if err := decodeMessage(rest, &d.Msg); err != nil {
		return h, err
	}
	return h, nil
}
