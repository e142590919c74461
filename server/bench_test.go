package server_test

import (
	"context"
	"net"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
)

// startBroker runs an in-process broker on a loopback port for the duration of b.
func startBroker(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop()})
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
