package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
)

// answerConn is a connection whose output goes to a buffer, for driving confirms.go directly.
func answerConn() (*conn, *channel, *bytes.Buffer) {
	var out bytes.Buffer
	c := &conn{srv: &Server{}, out: amqpwire.NewFrameWriter(&out), log: zerolog.Nop()}
	ch := &channel{id: 1, conn: c, log: zerolog.Nop(), confirm: true}
	return c, ch, &out
}

// answers decodes the basic.ack / basic.nack frames written so far, as "ack 3 m" (multiple)
// or "nack 4".
func answers(t *testing.T, c *conn, out *bytes.Buffer) []string {
	t.Helper()
	if err := c.out.Flush(); err != nil {
		t.Fatal(err)
	}
	fr := amqpwire.NewFrameReader(bytes.NewReader(out.Bytes()), 1<<20)
	out.Reset()
	var got []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return got
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		switch m := m.(type) {
		case *amqpwire.BasicAck:
			s = fmt.Sprint("ack ", m.DeliveryTag)
			if m.Multiple {
				s += " m"
			}
		case *amqpwire.BasicNack:
			s = fmt.Sprint("nack ", m.DeliveryTag)
			if m.Multiple {
				s += " m"
			}
		default:
			s = fmt.Sprintf("%T", m)
		}
		got = append(got, s)
	}
}

// Consecutive completed tags go out as one answer with multiple=true; a tag completed above a
// gap is answered alone at once, and a later run stops short of it rather than answer it
// twice; an ack run and a nack run are separate answers.
func TestConfirmAnswersCoalesce(t *testing.T) {
	c, ch, out := answerConn()
	waits := map[uint64]*writeWait{}
	for tag := uint64(1); tag <= 7; tag++ {
		waits[tag] = newConfirmWait(ch, tag)
		waits[tag].Add() // one store write each
		waits[tag].release()
	}
	complete := func(err error, tags ...uint64) {
		for _, tag := range tags {
			waits[tag].Done(err)
		}
	}
	complete(nil, 1, 2, 3, 5)
	c.writeConfirms()
	if got, want := fmt.Sprint(answers(t, c, out)), "[ack 3 m ack 5]"; got != want {
		t.Errorf("first answers %s, want %s", got, want)
	}
	complete(errors.New("disk full"), 4)
	complete(nil, 7, 6)
	c.writeConfirms()
	if got, want := fmt.Sprint(answers(t, c, out)), "[nack 4 ack 7 m]"; got != want {
		t.Errorf("second answers %s, want %s", got, want)
	}
}

// A confirmed publish held in two queues is released in both when its writes succeed, and
// withdrawn from both, before the nack is written, when one write fails: a message its
// publisher was told was refused is in no queue.
func TestConfirmSettlesHeldEntriesBeforeAnswering(t *testing.T) {
	for _, writeErr := range []error{nil, errors.New("disk full")} {
		c, ch, out := answerConn()
		qs := []*queue.Queue{queue.New("a", queue.Options{}), queue.New("b", queue.Options{})}
		w := newConfirmWait(ch, 1)
		msg := &queue.Message{Body: []byte("m"), Persistent: true}
		for _, q := range qs {
			res, e, _ := q.PublishHeld(msg, nil)
			if res != queue.Enqueued || e == nil {
				t.Fatalf("PublishHeld = %v, %v", res, e)
			}
			w.Hold(q, e)
			w.Add()
		}
		w.release()
		w.Done(nil)
		for _, q := range qs {
			if e, _ := q.Get(true); e != nil {
				t.Fatalf("queue %s gave out a held message", q.Name())
			}
		}
		w.Done(writeErr)
		c.writeConfirms()
		want := "[ack 1]"
		if writeErr != nil {
			want = "[nack 1]"
		}
		if got := fmt.Sprint(answers(t, c, out)); got != want {
			t.Errorf("write error %v: answers %s, want %s", writeErr, got, want)
		}
		for _, q := range qs {
			e, _ := q.Get(true)
			if (e != nil) != (writeErr == nil) {
				t.Errorf("write error %v: queue %s gave %v after the answer", writeErr, q.Name(), e)
			}
		}
	}
}

// Over a socket: a publisher that pipelines 2,000 persistent messages to a durable queue gets
// every tag answered exactly once, and most of them in multiple=true acks, as RabbitMQ sends
// when a batch reaches the disk.
func TestConfirmedPublisherGetsMultipleAcks(t *testing.T) {
	_, addr := storeBroker(t, Config{}, false)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	const n = 2000
	var req bytes.Buffer
	fw := amqpwire.NewFrameWriter(&req)
	writeHandshake(&req, fw, 131072)
	fw.WriteMethod(1, &amqpwire.QueueDeclare{Queue: "confirmed", Durable: true})
	fw.WriteMethod(1, &amqpwire.ConfirmSelect{})
	props := (&amqpwire.Properties{Flags: amqpwire.FlagDeliveryMode, DeliveryMode: 2}).Append(nil)
	body := bytes.Repeat([]byte("b"), 1024)
	for range n {
		fw.WriteMethod(1, &amqpwire.BasicPublish{RoutingKey: "confirmed"})
		fw.WriteContentRaw(1, amqpwire.ClassBasic, props, body, 131072)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = nc.Write(req.Bytes()) }()

	fr := amqpwire.NewFrameReader(nc, 131072)
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	answered := uint64(0) // every tag up to here is answered
	frames, multiples := 0, 0
	for answered < n {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d of %d tags answered: %v", answered, n, err)
		}
		if f.Type != amqpwire.FrameMethod {
			continue
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *amqpwire.BasicAck:
			frames++
			if m.Multiple {
				multiples++
			}
			// Every publish waits on the same disk in order, so answers come in tag order:
			// a single ack answers the next tag, a multiple one a run starting there.
			if m.DeliveryTag <= answered || (!m.Multiple && m.DeliveryTag != answered+1) {
				t.Fatalf("ack %d (multiple %v) after every tag up to %d was answered", m.DeliveryTag, m.Multiple, answered)
			}
			answered = m.DeliveryTag
		case *amqpwire.BasicNack:
			t.Fatalf("nack %d", m.DeliveryTag)
		case *amqpwire.ConnectionClose, *amqpwire.ChannelClose:
			t.Fatalf("closed: %+v", m)
		}
	}
	t.Logf("%d tags answered in %d acks, %d of them multiple", n, frames, multiples)
	if multiples == 0 || frames > n/2 {
		t.Errorf("%d tags answered in %d acks (%d multiple): no coalescing", n, frames, multiples)
	}
}
