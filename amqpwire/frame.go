package amqpwire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ProtocolHeader is the AMQP 0-9-1 protocol header a client sends first and
// a server answers a wrong header with.
var ProtocolHeader = []byte("AMQP\x00\x00\x09\x01")

// MaxFrameSizeCap is the hard upper bound on a frame read by FrameReader,
// whatever maximum it is given: 128 MiB, header and end octet included.
const MaxFrameSizeCap = 128 << 20

// frameOverhead is the 7-byte frame header plus the end octet.
const frameOverhead = 8

// Input buffer sizes: a FrameReader starts with a small buffer, so that an idle connection
// costs little memory, and grows it once to the large one the first time the socket fills the
// whole buffer, so that a busy connection reads many frames per system call.
const (
	smallReadBuffer = 4 << 10
	readBufferSize  = 64 << 10
)

// ReadProtocolHeader reads exactly 8 bytes from r and checks that they are
// ProtocolHeader. A mismatch returns an error wrapping ErrBadProtocolHeader;
// a read failure returns the I/O error wrapped (io.EOF and
// io.ErrUnexpectedEOF stay detectable with errors.Is).
func ReadProtocolHeader(r io.Reader) error {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("amqpwire: read protocol header: %w", err)
	}
	if string(hdr[:]) != string(ProtocolHeader) {
		return fmt.Errorf("%w: got %q", ErrBadProtocolHeader, hdr[:])
	}
	return nil
}

// Frame is one frame. Payload is valid only until the next ReadFrame: the
// reader reuses its buffer.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// FrameReader reads frames from a buffered reader, reusing one payload
// buffer, so reading costs no allocation once the buffer has grown to the
// largest frame seen. It is not safe for concurrent use.
type FrameReader struct {
	src io.Reader
	in  []byte // input read from src; in[pos:end] is not consumed yet
	pos int
	end int
	max uint32 // whole-frame limit; already capped at MaxFrameSizeCap
	hdr [7]byte
	buf []byte
}

// NewFrameReader returns a FrameReader on r. maxFrameSize limits the whole
// frame (7-byte header, payload and end octet), as connection.tune's
// frame-max does; 0 means no limit but MaxFrameSizeCap.
func NewFrameReader(r io.Reader, maxFrameSize uint32) *FrameReader {
	fr := &FrameReader{src: r, in: make([]byte, smallReadBuffer)}
	fr.SetMaxFrameSize(maxFrameSize)
	return fr
}

// SetMaxFrameSize changes the limit, typically after connection.tune-ok.
// 0 means MaxFrameSizeCap; larger values are capped to it.
func (r *FrameReader) SetMaxFrameSize(n uint32) {
	if n == 0 || n > MaxFrameSizeCap {
		n = MaxFrameSizeCap
	}
	r.max = n
}

// ReadFrame reads the next frame. Errors:
//   - I/O errors, wrapped (errors.Is(err, io.EOF) holds for a clean end
//     between frames; a frame cut short gives io.ErrUnexpectedEOF);
//   - a frame larger than the maximum: *ConnectionError 501 FRAME_ERROR,
//     decided from the header before the payload is read or allocated;
//   - an end octet other than 0xCE, an unknown frame type or a heartbeat
//     with a payload: *ConnectionError 501 FRAME_ERROR, as RabbitMQ answers
//     (rabbit_reader: invalid_frame_end_marker, unknown_frame).
func (r *FrameReader) ReadFrame() (Frame, error) {
	if _, err := r.readFull(r.hdr[:]); err != nil {
		return Frame{}, fmt.Errorf("amqpwire: read frame header: %w", err)
	}
	typ := r.hdr[0]
	channel := binary.BigEndian.Uint16(r.hdr[1:])
	size := binary.BigEndian.Uint32(r.hdr[3:])
	if total := uint64(size) + frameOverhead; total > uint64(r.max) {
		return Frame{}, NewConnectionError(CodeFrameError, 0, 0,
			"frame size %d exceeds frame_max %d (type %d, channel %d)", total, r.max, typ, channel)
	}
	buf, err := r.readPayload(int(size) + 1) // size+8 <= 128 MiB: no overflow
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("amqpwire: read frame payload: %w", err)
	}
	if end := buf[size]; end != FrameEnd {
		return Frame{}, NewConnectionError(CodeFrameError, 0, 0,
			"invalid frame end octet %#02x (type %d, channel %d, size %d)", end, typ, channel, size)
	}
	switch typ {
	case FrameMethod, FrameHeader, FrameBody:
	case FrameHeartbeat:
		if size != 0 {
			return Frame{}, NewConnectionError(CodeFrameError, 0, 0,
				"heartbeat frame with a %d-byte payload", size)
		}
	default:
		return Frame{}, NewConnectionError(CodeFrameError, 0, 0,
			"unknown frame type %d (channel %d, size %d)", typ, channel, size)
	}
	return Frame{Type: typ, Channel: channel, Payload: buf[:size:size]}, nil
}

// readPayload reads n bytes into the reused buffer. When the buffer must
// grow, it grows with the bytes actually received (doubling from 64 KiB), so
// a header that announces a large frame and is followed by little data
// costs little memory.
func (r *FrameReader) readPayload(n int) ([]byte, error) {
	if cap(r.buf) >= n {
		buf := r.buf[:n]
		_, err := r.readFull(buf)
		return buf, err
	}
	buf := r.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), readBufferSize), growTo(n))
			grown := make([]byte, len(buf), c)
			copy(grown, buf)
			buf = grown
			r.buf = grown
		}
		k, err := r.readFull(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// readFull fills p from the buffered input, reading from src as needed, with io.ReadFull's
// errors. A read larger than the input buffer goes straight into p once the buffer is empty.
func (r *FrameReader) readFull(p []byte) (int, error) {
	n := copy(p, r.in[r.pos:r.end])
	r.pos += n
	for n < len(p) {
		if len(p)-n >= len(r.in) {
			k, err := io.ReadAtLeast(r.src, p[n:], len(p)-n)
			n += k
			if err != nil {
				return n, readErr(err, n)
			}
			return n, nil
		}
		if err := r.fill(); err != nil {
			return n, readErr(err, n)
		}
		k := copy(p[n:], r.in[r.pos:r.end])
		r.pos += k
		n += k
	}
	return n, nil
}

// fill reads more input into the empty buffer; a read that fills the small buffer whole
// switches to the large one for the rest of the connection.
func (r *FrameReader) fill() error {
	r.pos, r.end = 0, 0
	for empty := 0; ; empty++ {
		if empty == 100 {
			return io.ErrNoProgress
		}
		k, err := r.src.Read(r.in)
		if k > 0 {
			r.end = k
			if k == len(r.in) && len(r.in) < readBufferSize {
				grown := make([]byte, readBufferSize)
				r.end = copy(grown, r.in[:k])
				r.in = grown
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readErr is io.ReadFull's error for a read that stopped after n bytes.
func readErr(err error, n int) error {
	if err == io.EOF && n > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// growTo rounds a buffer size up to a 4 KiB multiple so that frames of
// slightly varying sizes reuse one buffer; below 4 KiB, to a 512-byte one, so
// the handshake of a connection that stays idle leaves a small buffer.
func growTo(n int) int {
	if n < 4096 {
		return (n + 511) &^ 511
	}
	return (n + 4095) &^ 4095
}

// FrameWriter encodes frames by appending them to its own reused buffer and
// writes them to the io.Writer only in Flush, so a batch of frames costs one
// write and, in steady state, no allocation. It is not safe for concurrent
// use.
type FrameWriter struct {
	w   io.Writer
	buf []byte
	err error // first write error; sticky
}

// NewFrameWriter returns a FrameWriter on w.
func NewFrameWriter(w io.Writer) *FrameWriter {
	// The buffer grows with what is written: an idle connection's writers stay small.
	return &FrameWriter{w: w}
}

// startFrame appends a frame header with a zero size and returns its offset.
func (w *FrameWriter) startFrame(typ uint8, channel uint16) int {
	start := len(w.buf)
	w.buf = append(w.buf, typ, byte(channel>>8), byte(channel), 0, 0, 0, 0)
	return start
}

// endFrame patches the size of the frame started at start and appends the
// end octet.
func (w *FrameWriter) endFrame(start int) {
	binary.BigEndian.PutUint32(w.buf[start+3:], uint32(len(w.buf)-start-7))
	w.buf = append(w.buf, FrameEnd)
}

// WriteMethod appends one method frame.
func (w *FrameWriter) WriteMethod(channel uint16, m Method) {
	start := w.startFrame(FrameMethod, channel)
	w.buf = AppendMethod(w.buf, m)
	w.endFrame(start)
}

// WriteContent appends a content header frame with props and the body split
// into body frames so that no frame exceeds frameMax (the whole frame,
// 8 bytes of overhead included; 0 means one body frame). An empty body
// sends the header frame alone. frameMax must leave room for the header
// frame; values below 9 are treated as 9 (one body byte per frame).
func (w *FrameWriter) WriteContent(channel uint16, classID uint16, props *Properties, body []byte, frameMax uint32) {
	start := w.startFrame(FrameHeader, channel)
	w.buf = appendShort(w.buf, classID)
	w.buf = appendShort(w.buf, 0) // weight
	w.buf = appendLonglong(w.buf, uint64(len(body)))
	w.buf = props.Append(w.buf)
	w.endFrame(start)
	w.writeBody(channel, body, frameMax)
}

// WriteContentRaw is WriteContent with the property flags and list already
// encoded (as Properties.Append produces them, or ContentHeader's
// RawProperties), for forwarding without re-encoding.
func (w *FrameWriter) WriteContentRaw(channel uint16, classID uint16, rawProps []byte, body []byte, frameMax uint32) {
	start := w.startFrame(FrameHeader, channel)
	w.buf = appendShort(w.buf, classID)
	w.buf = appendShort(w.buf, 0) // weight
	w.buf = appendLonglong(w.buf, uint64(len(body)))
	w.buf = append(w.buf, rawProps...)
	w.endFrame(start)
	w.writeBody(channel, body, frameMax)
}

func (w *FrameWriter) writeBody(channel uint16, body []byte, frameMax uint32) {
	chunk := len(body)
	if frameMax != 0 {
		if frameMax < frameOverhead+1 {
			frameMax = frameOverhead + 1
		}
		if c := uint64(frameMax - frameOverhead); c < uint64(chunk) {
			chunk = int(c)
		}
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		start := w.startFrame(FrameBody, channel)
		w.buf = append(w.buf, body[:n]...)
		w.endFrame(start)
		body = body[n:]
	}
}

// WriteHeartbeat appends a heartbeat frame.
func (w *FrameWriter) WriteHeartbeat() {
	w.buf = append(w.buf, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// Buffered returns the number of bytes appended and not yet flushed.
func (w *FrameWriter) Buffered() int { return len(w.buf) }

// shrinkAbove is the buffer capacity above which Flush lets the buffer go,
// so one large message does not pin its size for the life of a connection.
const shrinkAbove = 4 << 20

// Flush writes the buffered frames in one Write. After a write error the
// buffer is dropped and every later Flush returns the same error.
func (w *FrameWriter) Flush() error {
	if w.err != nil {
		w.buf = w.buf[:0]
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	if cap(w.buf) > shrinkAbove {
		w.buf = make([]byte, 0, 4096)
	}
	if err != nil {
		w.err = fmt.Errorf("amqpwire: write frames: %w", err)
		return w.err
	}
	return nil
}
