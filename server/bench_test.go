package server_test

import (
	"context"
	"net"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/store"
)

// startBroker runs an in-process broker on a loopback port for the duration of b, with a
// store when st is not nil.
func startBroker(b *testing.B, st ...*store.Store) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := server.Config{Logger: zerolog.Nop()}
	if len(st) > 0 {
		cfg.Store = st[0]
	}
	srv := server.New(cfg)
	if err := srv.Recover(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background(), ln) }()
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return "amqp://guest:guest@" + ln.Addr().String() + "/"
}

// BenchmarkPublishConsume measures one publisher → one queue → one consumer through the
// in-process broker over loopback TCP with amqp091-go, 1 KiB bodies; ns/op is per message.
func BenchmarkPublishConsume(b *testing.B) {
	for _, mode := range []string{"noack", "ack"} {
		b.Run(mode, func(b *testing.B) {
			url := startBroker(b)
			pubConn, err := amqp.Dial(url)
			if err != nil {
				b.Fatal(err)
			}
			defer pubConn.Close()
			conConn, err := amqp.Dial(url)
			if err != nil {
				b.Fatal(err)
			}
			defer conConn.Close()
			pub, _ := pubConn.Channel()
			con, _ := conConn.Channel()
			q2, err := con.QueueDeclare("bench-"+mode, false, true, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := con.Qos(1000, 0, false); err != nil {
				b.Fatal(err)
			}
			deliveries, err := con.Consume(q2.Name, "", mode == "noack", false, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 1024)
			done := make(chan struct{})
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				defer close(done)
				for i := 0; i < b.N; i++ {
					d, ok := <-deliveries
					if !ok {
						return
					}
					if mode == "ack" {
						_ = d.Ack(false)
					}
				}
			}()
			for i := 0; i < b.N; i++ {
				if err := pub.Publish("", q2.Name, false, false, amqp.Publishing{Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			<-done
		})
	}
}

// BenchmarkPublishConfirm measures a confirming publisher with 64 messages in flight, 1 KiB
// bodies, no consumer: transient messages through an in-memory broker, and persistent ones
// to a durable queue in a store (no fsync, so the confirm path is measured, not the disk);
// ns/op is per confirmed message.
func BenchmarkPublishConfirm(b *testing.B) {
	for _, mode := range []string{"transient", "persistent"} {
		b.Run(mode, func(b *testing.B) {
			var url string
			if mode == "persistent" {
				st, err := store.Open(store.Options{Dir: b.TempDir(), NoSync: true, Logger: zerolog.Nop()})
				if err != nil {
					b.Fatal(err)
				}
				url = startBroker(b, st)
				b.Cleanup(func() { _ = st.Close() })
			} else {
				url = startBroker(b)
			}
			conn, err := amqp.Dial(url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			q, err := ch.QueueDeclare("bench-confirm-"+mode, mode == "persistent", false, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
			msg := amqp.Publishing{Body: make([]byte, 1024)}
			if mode == "persistent" {
				msg.DeliveryMode = amqp.Persistent
			}
			window := make(chan *amqp.DeferredConfirmation, 64)
			done := make(chan struct{})
			b.SetBytes(int64(len(msg.Body)))
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				defer close(done)
				for dc := range window {
					if !dc.Wait() {
						b.Error("nacked")
						return
					}
				}
			}()
			for i := 0; i < b.N; i++ {
				dc, err := ch.PublishWithDeferredConfirm("", q.Name, false, false, msg)
				if err != nil {
					b.Fatal(err)
				}
				window <- dc
			}
			close(window)
			<-done
		})
	}
}
