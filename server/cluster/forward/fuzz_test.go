package forward

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
)

// sampleFrames has one frame of every type, with every optional part.
func sampleFrames(t testing.TB) []frame {
	args, err := amqpwire.NewTable(map[string]any{"x-priority": int32(5)})
	if err != nil {
		t.Fatal(err)
	}
	nf := toResult(NotFound("/", "q", amqpwire.ClassBasic, amqpwire.MethodBasicConsume))
	return []frame{
		{typ: tPublish, id: 1, flags: fPersistent | fConfirm, vhost: "/", queue: "q", exchange: "x", key: "k", props: []byte{0x80, 0, 1, 'a'}, body: []byte("hello")},
		{typ: tPublishOk, id: 2, res: result{kind: rOther, text: "disk full"}},
		{typ: tPublishOk, id: 3},
		{typ: tConsume, id: 4, flags: fNoAck | fExclusive, n1: 10, n2: 20, vhost: "v", queue: "q", exchange: "ctag", args: args},
		{typ: tConsumeOk, id: 5, res: nf},
		{typ: tDeliver, id: 6, id2: 7, flags: fRedelivered, n1: 3, vhost: "x", queue: "k", props: []byte{0, 0}, body: []byte("b")},
		{typ: tSettle, id: 8, id2: 9, flags: byte(Discard) | fMultiple},
		{typ: tCredit, id: 10, n1: 100},
		{typ: tCancel, id: 11},
		{typ: tCancelled, id: 12, res: toResult(amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0, "boom"))},
		{typ: tClose, id: 13},
		{typ: tGet, id: 14, flags: fNoAck, vhost: "/", queue: "q"},
		{typ: tGetOk, id: 15, flags: fHas | fRedelivered, n1: 4, id2: 16, n2: 2, vhost: "x", queue: "k", props: []byte{0, 0}, body: []byte("m")},
		{typ: tGetOk, id: 17, n1: 0},
		{typ: tPurge, id: 18, vhost: "/", queue: "q"},
		{typ: tPurgeOk, id: 19, n1: 7},
		{typ: tStats, id: 20, vhost: "/", queue: "q"},
		{typ: tStatsOk, id: 21, n1: 1, n2: 2, n3: 3},
		{typ: tPing},
	}
}

// TestFramesRoundTrip: every frame type decodes to what was encoded.
func TestFramesRoundTrip(t *testing.T) {
	for _, f := range sampleFrames(t) {
		b := appendFrame(nil, &f)
		if int(binary.BigEndian.Uint32(b)) != len(b)-4 {
			t.Fatalf("type %d: length prefix %d for %d bytes", f.typ, binary.BigEndian.Uint32(b), len(b)-4)
		}
		g, err := decodeFrame(b[4:])
		if err != nil {
			t.Fatalf("type %d: %v", f.typ, err)
		}
		if !bytes.Equal(appendFrame(nil, &g), b) || g.res != f.res || string(g.body) != string(f.body) || g.id != f.id {
			t.Fatalf("type %d: decoded %+v, encoded %+v", f.typ, g, f)
		}
	}
}

// TestOversizedFrameIsRefused: a length prefix over MaxFrame is an error before any
// allocation of that size.
func TestOversizedFrameIsRefused(t *testing.T) {
	var hdr [4]byte
	in := binary.BigEndian.AppendUint32(nil, MaxFrame+1)
	if _, err := readFrame(bytes.NewReader(in), &hdr); !errors.Is(err, errBadFrame) {
		t.Fatalf("readFrame = %v, want errBadFrame", err)
	}
}

// FuzzDecodeFrame: no input makes the decoder panic or read out of bounds, and whatever it
// accepts encodes back to the same bytes (the encoding is canonical, so nothing is lost or
// invented between nodes).
func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range sampleFrames(f) {
		f.Add(appendFrame(nil, &fr)[4:])
	}
	f.Add([]byte{})
	f.Add([]byte{tLast + 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		fr, err := decodeFrame(p)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("error %v does not wrap errBadFrame", err)
			}
			return
		}
		if got := appendFrame(nil, &fr)[4:]; !bytes.Equal(got, p) {
			t.Fatalf("decoded %x as %+v, which encodes as %x", p, fr, got)
		}
	})
}

// FuzzHandleFrames: whatever frame a peer sends (decodable, in any state), neither end
// panics: A handles it after a consumer and a get are set up, B dispatches it with a publish,
// a request and a subscription in flight.
func FuzzHandleFrames(f *testing.F) {
	for _, fr := range sampleFrames(f) {
		f.Add(appendFrame(nil, &fr)[4:])
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		fr, err := decodeFrame(p)
		if err != nil {
			return
		}
		// A's side.
		local := newFakeLocal("q")
		local.queues["q"].put("m1", "m2", "m3")
		a1, a2 := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, a2) }()
		sc := &serverConn{s: &Server{local: local, log: zerolog.Nop()}, w: newWire(a1),
			subs: map[uint64]*serverSub{}, got: map[uint64]gotEntry{}}
		go sc.w.run(func(error) {})
		_ = sc.handle(&frame{typ: tConsume, id: 1, n1: 1, vhost: "/", queue: "q"})
		_ = sc.handle(&frame{typ: tGet, id: 2, vhost: "/", queue: "q"})
		_ = sc.handle(&fr)
		sc.w.close(ErrClosed)
		<-sc.w.done
		sc.cleanup()
		_ = a2.Close()

		// B's side.
		b1, b2 := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, b2) }()
		c := &Client{log: zerolog.Nop(), conns: map[string]*clientConn{}}
		cc := &clientConn{c: c, addr: "a", w: newWire(b1), pending: map[uint64]waiter{}, subs: map[uint64]*Subscription{}}
		go cc.w.run(func(error) {})
		cc.pending[1] = waiter{done: func(error) {}}
		cc.pending[2] = waiter{reply: make(chan reply, 1)}
		s := &Subscription{cc: cc, id: 3, h: newRecorder(), started: make(chan error, 1), running: true}
		cc.subs[3] = s
		_ = cc.dispatch(&fr)
		cc.fail(ErrClosed)
		<-cc.w.done
		_ = b2.Close()
	})
}
