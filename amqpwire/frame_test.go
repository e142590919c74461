package amqpwire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestProtocolHeader(t *testing.T) {
	if err := ReadProtocolHeader(bytes.NewReader(ProtocolHeader)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"AMQP\x00\x00\x09\x00", "GET / HTTP/1.1\r\n", "AMQP\x01\x01\x00\x0a"} {
		err := ReadProtocolHeader(strings.NewReader(bad))
		if !errors.Is(err, ErrBadProtocolHeader) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := ReadProtocolHeader(strings.NewReader("AMQP")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short: %v", err)
	}
	if err := ReadProtocolHeader(strings.NewReader("")); !errors.Is(err, io.EOF) {
		t.Errorf("empty: %v", err)
	}
	// Exactly 8 bytes are consumed.
	r := strings.NewReader(string(ProtocolHeader) + "rest")
	if err := ReadProtocolHeader(r); err != nil || r.Len() != 4 {
		t.Fatal(err, r.Len())
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	pub := &BasicPublish{Exchange: "amq.topic", RoutingKey: "a.b", Mandatory: true}
	props := Properties{Flags: FlagDeliveryMode | FlagContentType, DeliveryMode: 2, ContentType: "text/plain"}
	body := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes
	w.WriteMethod(7, pub)
	w.WriteContent(7, ClassBasic, &props, body, FrameMinSize)
	w.WriteHeartbeat()
	w.WriteContentRaw(9, ClassBasic, props.Append(nil), nil, 0)
	if buf.Len() != 0 {
		t.Fatal("wrote before Flush")
	}
	n := w.Buffered()
	if err := w.Flush(); err != nil || buf.Len() != n || w.Buffered() != 0 {
		t.Fatal(err, buf.Len(), n)
	}

	r := NewFrameReader(&buf, FrameMinSize)
	f := mustRead(t, r)
	if f.Type != FrameMethod || f.Channel != 7 {
		t.Fatalf("%+v", f)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil || *m.(*BasicPublish) != *pub {
		t.Fatal(m, err)
	}
	f = mustRead(t, r)
	var h ContentHeader
	if err := h.Decode(f.Payload); err != nil || h.BodySize != uint64(len(body)) || h.Properties.ContentType != "text/plain" {
		t.Fatal(h, err)
	}
	var got []byte
	for len(got) < len(body) {
		f = mustRead(t, r)
		if f.Type != FrameBody || f.Channel != 7 || len(f.Payload)+8 > FrameMinSize {
			t.Fatalf("body frame %d/%d bytes", f.Type, len(f.Payload))
		}
		got = append(got, f.Payload...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body differs")
	}
	if f = mustRead(t, r); f.Type != FrameHeartbeat || f.Channel != 0 || len(f.Payload) != 0 {
		t.Fatalf("%+v", f)
	}
	f = mustRead(t, r)
	if err := h.Decode(f.Payload); err != nil || f.Channel != 9 || h.BodySize != 0 {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v", err)
	}
}

func TestWriteContentSplitting(t *testing.T) {
	for _, tc := range []struct {
		body, frameMax, frames int
	}{
		{0, 4096, 0}, {1, 4096, 1}, {4088, 4096, 1}, {4089, 4096, 2}, {10000, 0, 1}, {5, 3, 5}, {3, 10, 2},
	} {
		var buf bytes.Buffer
		w := NewFrameWriter(&buf)
		w.WriteContent(1, ClassBasic, &Properties{}, make([]byte, tc.body), uint32(tc.frameMax))
		w.Flush()
		r := NewFrameReader(&buf, 0)
		mustRead(t, r) // header
		frames, total := 0, 0
		for {
			f, err := r.ReadFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.frameMax >= 9 && len(f.Payload)+8 > tc.frameMax {
				t.Fatalf("%+v: frame of %d", tc, len(f.Payload)+8)
			}
			frames++
			total += len(f.Payload)
		}
		if frames != tc.frames || total != tc.body {
			t.Errorf("%+v: %d frames, %d bytes", tc, frames, total)
		}
	}
}

func mustRead(t *testing.T, r *FrameReader) Frame {
	t.Helper()
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// failAfter returns its prefix and then fails the test on any further read:
// the oversize check must happen before the payload is read.
type failAfter struct {
	t    *testing.T
	data []byte
}

func (f *failAfter) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		f.t.Fatal("payload read after an oversize header")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestOversizeFrameRejectedBeforeAllocation(t *testing.T) {
	hdr := []byte{FrameBody, 0, 1, 0x7f, 0xff, 0xff, 0xff} // 2 GiB payload
	r := NewFrameReader(&failAfter{t: t, data: hdr}, 0)
	_, err := r.ReadFrame()
	ce := assertConnErr(t, err, CodeFrameError, 0, 0)
	if !strings.Contains(ce.Text, "exceeds frame_max") {
		t.Fatal(ce.Text)
	}
	if cap(r.buf) != 0 {
		t.Fatalf("allocated %d bytes", cap(r.buf))
	}
	// Exactly frame_max is accepted; one more byte is not.
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	w.WriteContentRaw(1, ClassBasic, []byte{0, 0}, make([]byte, 4096-8), 0)
	w.Flush()
	r = NewFrameReader(&buf, 4096)
	mustRead(t, r)
	if f := mustRead(t, r); len(f.Payload) != 4088 {
		t.Fatal(len(f.Payload))
	}
	buf.Reset()
	w.WriteContentRaw(1, ClassBasic, []byte{0, 0}, make([]byte, 4096-7), 0)
	w.Flush()
	r = NewFrameReader(&buf, 4096)
	mustRead(t, r)
	_, err = r.ReadFrame()
	assertConnErr(t, err, CodeFrameError, 0, 0)
	// SetMaxFrameSize raises the limit.
	buf.Reset()
	w.WriteContentRaw(1, ClassBasic, []byte{0, 0}, make([]byte, 4096-7), 0)
	w.Flush()
	r = NewFrameReader(&buf, 4096)
	r.SetMaxFrameSize(131072)
	mustRead(t, r)
	mustRead(t, r)
}

func TestFrameErrors(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		code uint16
		io   error
	}{
		{"bad end octet", []byte{1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 40, 0xCD}, CodeFrameError, nil},
		{"unknown type", []byte{5, 0, 0, 0, 0, 0, 0, 0xCE}, CodeFrameError, nil},
		{"heartbeat with payload", []byte{8, 0, 0, 0, 0, 0, 1, 0, 0xCE}, CodeFrameError, nil},
		{"truncated header", []byte{1, 0, 0, 0}, 0, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{1, 0, 0, 0, 0, 0, 10, 1, 2}, 0, io.ErrUnexpectedEOF},
		{"missing end octet", []byte{1, 0, 0, 0, 0, 0, 1, 0}, 0, io.ErrUnexpectedEOF},
		{"empty", nil, 0, io.EOF},
	}
	for _, c := range cases {
		_, err := NewFrameReader(bytes.NewReader(c.raw), 0).ReadFrame()
		if c.io != nil {
			if !errors.Is(err, c.io) {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var ce *ConnectionError
		if !errors.As(err, &ce) || ce.Code != c.code {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

type errWriter struct{ n int }

func (w *errWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, io.ErrClosedPipe
}

func TestFlushErrorIsSticky(t *testing.T) {
	ew := &errWriter{}
	w := NewFrameWriter(ew)
	w.WriteHeartbeat()
	if err := w.Flush(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatal(err)
	}
	w.WriteHeartbeat()
	if err := w.Flush(); !errors.Is(err, io.ErrClosedPipe) || ew.n != 1 || w.Buffered() != 0 {
		t.Fatal(err, ew.n)
	}
}

// loopReader replays the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func TestSteadyStateAllocs(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf)
	props := Properties{Flags: FlagDeliveryMode, DeliveryMode: 2}
	fw.WriteMethod(1, &BasicPublish{RoutingKey: "q"})
	fw.WriteContent(1, ClassBasic, &props, make([]byte, 1024), 131072)
	fw.Flush()
	r := NewFrameReader(&loopReader{data: buf.Bytes()}, 131072)
	mustRead(t, r)
	if a := testing.AllocsPerRun(1000, func() { r.ReadFrame() }); a != 0 {
		t.Errorf("ReadFrame: %v allocs", a)
	}
	w := NewFrameWriter(io.Discard)
	d := &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1, Exchange: "x", RoutingKey: "q"}
	body := make([]byte, 1024)
	if a := testing.AllocsPerRun(1000, func() {
		w.WriteMethod(1, d)
		w.WriteContent(1, ClassBasic, &props, body, 131072)
		w.WriteHeartbeat()
		w.Flush()
	}); a != 0 {
		t.Errorf("FrameWriter: %v allocs", a)
	}
}

func TestLargeAnnouncedFrameGrowsWithData(t *testing.T) {
	raw := append([]byte{FrameBody, 0, 1, 0x06, 0x40, 0x00, 0x00}, make([]byte, 1000)...) // 100 MiB announced
	r := NewFrameReader(bytes.NewReader(raw), 0)
	if _, err := r.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if cap(r.buf) > readBufferSize {
		t.Fatalf("buffer grew to %d for 1000 bytes of data", cap(r.buf))
	}
	// A frame larger than the buffer is read in growing steps.
	body := bytes.Repeat([]byte{7}, 300000)
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	w.WriteContentRaw(1, ClassBasic, []byte{0, 0}, body, 0)
	w.Flush()
	r = NewFrameReader(&buf, 0)
	mustRead(t, r)
	if f := mustRead(t, r); !bytes.Equal(f.Payload, body) {
		t.Fatal("body differs")
	}
}

// A connection that only ever sees small reads keeps the small input buffer (idle
// connections cost little memory); one whose socket fills the buffer switches to the large
// one. Frames read the same either way, whatever sizes the reads come in.
func TestFrameReaderBufferGrowsWhenBusy(t *testing.T) {
	var stream bytes.Buffer
	w := NewFrameWriter(&stream)
	body := bytes.Repeat([]byte{7}, 1000)
	for i := 0; i < 200; i++ {
		w.WriteMethod(uint16(i%3+1), &BasicPublish{Exchange: "x", RoutingKey: "k"})
		w.WriteContent(uint16(i%3+1), ClassBasic, &Properties{}, body, 4096)
	}
	w.WriteHeartbeat()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	data := stream.Bytes()

	read := func(src io.Reader) (*FrameReader, int) {
		r := NewFrameReader(src, 0)
		frames := 0
		for {
			f, err := r.ReadFrame()
			if errors.Is(err, io.EOF) {
				return r, frames
			}
			if err != nil {
				t.Fatalf("frame %d: %v", frames, err)
			}
			if f.Type == FrameBody && !bytes.Equal(f.Payload, body) {
				t.Fatalf("frame %d: body differs", frames)
			}
			frames++
		}
	}
	oneByte, n1 := read(iotest.OneByteReader(bytes.NewReader(data)))
	if len(oneByte.in) != smallReadBuffer {
		t.Errorf("one byte at a time: input buffer %d bytes, want the small %d", len(oneByte.in), smallReadBuffer)
	}
	busy, n2 := read(bytes.NewReader(data))
	if len(busy.in) != readBufferSize {
		t.Errorf("a full socket: input buffer %d bytes, want the large %d", len(busy.in), readBufferSize)
	}
	_, n3 := read(iotest.HalfReader(bytes.NewReader(data)))
	if n1 != 601 || n2 != 601 || n3 != 601 {
		t.Fatalf("frames read: %d, %d, %d; want 601 each", n1, n2, n3)
	}
}
