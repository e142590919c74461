package server_test

import (
	"strconv"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/store"
)

// BenchmarkPublishConfirmDedup is BenchmarkPublishConfirm's persistent case (a durable queue
// in a store without fsync, 64 confirms in flight, 1 KiB bodies) with every message carrying
// a new x-deduplication-header, to a queue without and with x-message-deduplication; ns/op is
// per confirmed message.
func BenchmarkPublishConfirmDedup(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			st, err := store.Open(store.Options{Dir: b.TempDir(), NoSync: true, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			url := startBroker(b, st)
			b.Cleanup(func() { _ = st.Close() })
			conn, err := amqp.Dial(url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			var args amqp.Table
			if mode == "on" {
				args = amqp.Table{"x-message-deduplication": true, "x-cache-size": int32(100_000)}
			}
			q, err := ch.QueueDeclare("bench-dedup-"+mode, true, false, false, false, args)
			if err != nil {
				b.Fatal(err)
			}
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
			window := make(chan *amqp.DeferredConfirmation, 64)
			done := make(chan struct{})
			body := make([]byte, 1024)
			b.SetBytes(int64(len(body)))
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
				msg := amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent,
					Headers: amqp.Table{"x-deduplication-header": "order-" + strconv.Itoa(i)}}
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
