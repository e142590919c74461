package server

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
)

// signalWriter passes log lines on to a channel.
type signalWriter chan string

func (w signalWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

// A consumer whose socket stops draining is disconnected once a write has blocked for
// Config.WriteTimeout, and its unacked messages go back to the queue for others.
func TestWriteTimeoutDropsAStalledConsumer(t *testing.T) {
	logs := make(signalWriter, 1024)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Logger: zerolog.New(logs), WriteTimeout: 300 * time.Millisecond, DisableFlowControl: true})
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	addr := ln.Addr().String()

	pub, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("stalled", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A raw consumer that reads up to consume-ok and then nothing.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	_ = stalled.(*net.TCPConn).SetReadBuffer(4096)
	var hs bytes.Buffer
	fw := amqpwire.NewFrameWriter(&hs)
	writeHandshake(&hs, fw, 131072)
	fw.WriteMethod(1, &amqpwire.BasicConsume{Queue: q.Name, ConsumerTag: "stalled"})
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.Write(hs.Bytes()); err != nil {
		t.Fatal(err)
	}
	fr := amqpwire.NewFrameReader(stalled, 131072)
	_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("raw consumer: %v", err)
		}
		if m, err := amqpwire.DecodeMethod(f.Payload); err == nil {
			if _, ok := m.(*amqpwire.BasicConsumeOk); ok {
				break
			}
		}
	}

	// Publish until the broker gives up on the consumer; 64 MiB is far more than the output
	// backlog and socket buffers hold.
	const maxPublished = 1024
	body := bytes.Repeat([]byte("x"), 64<<10)
	deadline := time.After(20 * time.Second)
	published := 0
	for dropped := false; !dropped; {
		var publish chan struct{}
		if published < maxPublished {
			publish = make(chan struct{})
			close(publish)
		}
		select {
		case line := <-logs:
			dropped = strings.Contains(line, "write failed, closing connection")
		case <-deadline:
			t.Fatalf("the stalled consumer was not dropped within 20 s (%d messages of 64 KiB published)", published)
		case <-publish:
			if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
				t.Fatal(err)
			}
			published++
		}
	}
	// Its deliveries are requeued: every message published is in the queue again.
	for {
		got, err := ch.QueueDeclarePassive(q.Name, false, true, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Consumers == 0 && got.Messages == published {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("queue has %d messages and %d consumers, want %d and 0", got.Messages, got.Consumers, published)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
