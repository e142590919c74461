// Package servertest runs in-process brokers for the tests of the packages built on server
// (the management API, the metrics endpoint, the load tool): one place for how a test starts
// a broker, serves it on a loopback port and stops it, and waits on what clients see.
package servertest

import (
	"context"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// New makes a broker from cfg (the zero Logger logs nothing) and recovers its store.
func New(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	srv := server.New(cfg)
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// Serve serves srv's AMQP on a fresh loopback port until the test ends (then shuts it down
// and waits for Serve to return) and returns the port's address.
func Serve(t testing.TB, srv *server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(context.Background(), ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// URL is the AMQP URL of guest on addr's default vhost.
func URL(addr string) string { return "amqp://guest:guest@" + addr + "/" }

// WaitReady waits up to 10 s until queue holds n messages, as a passive declare on ch reports.
func WaitReady(t testing.TB, ch *amqp.Channel, queue string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d messages, want %d", queue, q.Messages, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Eventually retries check until it returns nil, failing the test with check's last error
// after 45 s (a shared 2-core machine elects slowly).
func Eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Channel dials the broker at addr as guest and opens a channel; the connection closes when
// the test ends.
func Channel(t testing.TB, addr string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(URL(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}
