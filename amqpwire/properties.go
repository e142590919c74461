package amqpwire

import (
	"encoding/binary"
	"slices"
)

// Property flags of the basic class, in wire order: bit 15 is the first
// property. Bit 0 of a flags word says another flags word follows.
const (
	FlagContentType     uint16 = 0x8000
	FlagContentEncoding uint16 = 0x4000
	FlagHeaders         uint16 = 0x2000
	FlagDeliveryMode    uint16 = 0x1000
	FlagPriority        uint16 = 0x0800
	FlagCorrelationID   uint16 = 0x0400
	FlagReplyTo         uint16 = 0x0200
	FlagExpiration      uint16 = 0x0100
	FlagMessageID       uint16 = 0x0080
	FlagTimestamp       uint16 = 0x0040
	FlagType            uint16 = 0x0020
	FlagUserID          uint16 = 0x0010
	FlagAppID           uint16 = 0x0008
	FlagClusterID       uint16 = 0x0004

	flagContinuation uint16 = 0x0001
	knownFlags       uint16 = 0xfffc
)

// Properties are the basic-class content properties.
type Properties struct {
	// Flags says which fields are present. A present field may hold its
	// zero value; an absent one is not encoded. Only the 14 flags above are
	// kept.
	Flags           uint16
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       uint64
	Type            string
	UserID          string
	AppID           string
	ClusterID       string // the XML's "reserved" property (cluster-id in 0-9)
}

// Decode replaces p with the properties in raw: the property flags word(s)
// followed by the property list. Strings and headers are copied, never
// aliasing raw. Continuation flag words are read; a property flagged in one
// of them is unknown to 0-9-1 and cannot be skipped, so it is an error, as
// are bytes left over after the last flagged property. Bit 1 of the first
// flags word, unused by 0-9-1, is ignored as RabbitMQ ignores it. Errors are
// *ConnectionError 501 FRAME_ERROR, the code RabbitMQ uses for frames it
// cannot decode.
func (p *Properties) Decode(raw []byte) error {
	*p = Properties{}
	r := argReader{buf: raw}
	w := r.short()
	p.Flags = w & knownFlags
	for w&flagContinuation != 0 && r.err == "" {
		w = r.short()
		if w&^flagContinuation != 0 {
			r.fail("unknown property flags in continuation word")
		}
	}
	f := p.Flags
	if f&FlagContentType != 0 {
		p.ContentType = r.shortstr()
	}
	if f&FlagContentEncoding != 0 {
		p.ContentEncoding = r.shortstr()
	}
	if f&FlagHeaders != 0 {
		p.Headers = r.table("headers")
	}
	if f&FlagDeliveryMode != 0 {
		p.DeliveryMode = r.octet()
	}
	if f&FlagPriority != 0 {
		p.Priority = r.octet()
	}
	if f&FlagCorrelationID != 0 {
		p.CorrelationID = r.shortstr()
	}
	if f&FlagReplyTo != 0 {
		p.ReplyTo = r.shortstr()
	}
	if f&FlagExpiration != 0 {
		p.Expiration = r.shortstr()
	}
	if f&FlagMessageID != 0 {
		p.MessageID = r.shortstr()
	}
	if f&FlagTimestamp != 0 {
		p.Timestamp = r.longlong()
	}
	if f&FlagType != 0 {
		p.Type = r.shortstr()
	}
	if f&FlagUserID != 0 {
		p.UserID = r.shortstr()
	}
	if f&FlagAppID != 0 {
		p.AppID = r.shortstr()
	}
	if f&FlagClusterID != 0 {
		p.ClusterID = r.shortstr()
	}
	if r.err == "" && len(r.buf) != 0 {
		r.fail("trailing bytes after the property list")
	}
	if r.err != "" {
		return NewConnectionError(CodeFrameError, 0, 0, "cannot decode content properties: %s", r.err)
	}
	return nil
}

// Append appends the flags word and the property list: a field is written
// iff its flag is set. Shortstrs longer than 255 bytes are cut (see
// appendShortstr); callers validate what they must not lose.
func (p *Properties) Append(b []byte) []byte {
	f := p.Flags & knownFlags
	b = appendShort(b, f)
	if f&FlagContentType != 0 {
		b = appendShortstr(b, p.ContentType)
	}
	if f&FlagContentEncoding != 0 {
		b = appendShortstr(b, p.ContentEncoding)
	}
	if f&FlagHeaders != 0 {
		b = AppendTable(b, p.Headers)
	}
	if f&FlagDeliveryMode != 0 {
		b = append(b, p.DeliveryMode)
	}
	if f&FlagPriority != 0 {
		b = append(b, p.Priority)
	}
	if f&FlagCorrelationID != 0 {
		b = appendShortstr(b, p.CorrelationID)
	}
	if f&FlagReplyTo != 0 {
		b = appendShortstr(b, p.ReplyTo)
	}
	if f&FlagExpiration != 0 {
		b = appendShortstr(b, p.Expiration)
	}
	if f&FlagMessageID != 0 {
		b = appendShortstr(b, p.MessageID)
	}
	if f&FlagTimestamp != 0 {
		b = appendLonglong(b, p.Timestamp)
	}
	if f&FlagType != 0 {
		b = appendShortstr(b, p.Type)
	}
	if f&FlagUserID != 0 {
		b = appendShortstr(b, p.UserID)
	}
	if f&FlagAppID != 0 {
		b = appendShortstr(b, p.AppID)
	}
	if f&FlagClusterID != 0 {
		b = appendShortstr(b, p.ClusterID)
	}
	return b
}

// ContentHeader is a decoded content header frame.
type ContentHeader struct {
	ClassID    uint16
	BodySize   uint64
	Properties Properties
	// RawProperties is a copy of the flags and property list exactly as
	// received, for storing and forwarding without re-encoding
	// (FrameWriter.WriteContentRaw).
	RawProperties []byte
}

// contentHeaderFixed is class-id (2), weight (2) and body-size (8).
const contentHeaderFixed = 14 - 2 // the flags word is part of the properties

// Decode decodes a content header frame payload: class-id, weight,
// body-size, property flags and property list. Errors are *ConnectionError:
// a payload too short for the fixed part is 501 FRAME_ERROR (RabbitMQ's
// frame analysis rejects it as an unknown frame); a non-zero weight is 505
// UNEXPECTED_FRAME, the answer RabbitMQ's command assembler gives; a
// malformed property list is 501. ClassID and MethodID are left 0: the
// caller knows which content-bearing method the header belongs to and may
// set them.
//
// The class id is not checked against the pending method; the caller does
// that (505 in RabbitMQ). The property list is decoded with the basic
// class's layout whatever the class id.
func (h *ContentHeader) Decode(payload []byte) error {
	*h = ContentHeader{}
	if len(payload) < contentHeaderFixed+2 {
		return NewConnectionError(CodeFrameError, 0, 0,
			"content header frame of %d bytes is shorter than the 14-byte minimum", len(payload))
	}
	h.ClassID = binary.BigEndian.Uint16(payload)
	if weight := binary.BigEndian.Uint16(payload[2:]); weight != 0 {
		return NewConnectionError(CodeUnexpectedFrame, 0, 0,
			"expected content header for class %d with weight 0, got weight %d", h.ClassID, weight)
	}
	h.BodySize = binary.BigEndian.Uint64(payload[4:])
	raw := payload[contentHeaderFixed:]
	if err := h.Properties.Decode(raw); err != nil {
		return err
	}
	h.RawProperties = slices.Clone(raw)
	return nil
}
