package conformance

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// startAlarmed starts a Warren whose memory or disk limit is already passed and returns its
// URL and the server, so the test can lift the limit.
func startAlarmed(t *testing.T, cfg server.Config) (string, *server.Server) {
	t.Helper()
	warrenOnly(t, "needs a broker whose resource limits the test sets")
	cfg.Logger = harnessLogger()
	url := startWarren(t, cfg)
	inProcessMu.Lock()
	srv := inProcess[url].srv
	inProcessMu.Unlock()
	return url, srv
}

// testAlarmBlocksPublishers checks RabbitMQ's blocking for one alarm: a connection that
// publishes gets connection.blocked with the reason, its message is neither delivered nor
// confirmed while the alarm lasts, a consumer-only connection keeps consuming and acking, and
// once the limit is lifted the publisher gets connection.unblocked and its confirm, and the
// message arrives.
func testAlarmBlocksPublishers(t *testing.T, cfg server.Config, reason string, lift func(*server.Server)) {
	url, srv := startAlarmed(t, cfg)

	consConn := dialConfig(t, url, amqp.Config{})
	consCh := channel(t, consConn)
	q, err := consCh.QueueDeclare(uniqueName(t, "alarm"), true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	consBlocked := consConn.NotifyBlocked(make(chan amqp.Blocking, 4))
	deliveries, err := consCh.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	pubConn := dialConfig(t, url, amqp.Config{})
	blocked := pubConn.NotifyBlocked(make(chan amqp.Blocking, 4))
	pubCh := channel(t, pubConn)
	if err := pubCh.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pubCh.NotifyPublish(make(chan amqp.Confirmation, 4))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := pubCh.PublishWithContext(ctx, "", q.Name, false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	b := recv(t, blocked, "connection.blocked")
	if !b.Active || b.Reason != reason {
		t.Errorf("got %+v, want connection.blocked with reason %q", b, reason)
	}
	select {
	case d := <-deliveries:
		t.Fatalf("message %q delivered while its publisher is blocked", d.Body)
	case c := <-confirms:
		t.Fatalf("publish confirmed (%+v) while its publisher is blocked", c)
	case <-time.After(300 * time.Millisecond):
	}
	select {
	case b := <-consBlocked:
		t.Errorf("a consumer-only connection was notified: %+v", b)
	default:
	}

	lift(srv)
	if b := recv(t, blocked, "connection.unblocked"); b.Active {
		t.Errorf("got %+v after the limit was lifted, want connection.unblocked", b)
	}
	if c := recv(t, confirms, "confirm after unblocking"); !c.Ack {
		t.Errorf("publish held during the alarm was nacked: %+v", c)
	}
	d := recv(t, deliveries, "the held message")
	if string(d.Body) != "held" {
		t.Errorf("delivered %q", d.Body)
	}
	if err := d.Ack(false); err != nil {
		t.Errorf("ack from the consumer connection: %v", err)
	}
}

func TestMemoryAlarmBlocksPublishers(t *testing.T) {
	testAlarmBlocksPublishers(t, server.Config{MemoryLimit: 1}, "low on memory",
		func(s *server.Server) { s.SetResourceLimits(1<<50, 0) })
}

func TestDiskAlarmBlocksPublishers(t *testing.T) {
	testAlarmBlocksPublishers(t, server.Config{DiskFreeLimit: 1 << 62}, "low on disk",
		func(s *server.Server) { s.SetResourceLimits(0, 0) })
}

// A client that did not announce the connection.blocked capability is blocked the same way,
// without the notification (which it would not understand).
func TestAlarmBlocksWithoutCapability(t *testing.T) {
	url, srv := startAlarmed(t, server.Config{MemoryLimit: 1})
	props := amqp.NewConnectionProperties()
	props["capabilities"] = amqp.Table{"publisher_confirms": true, "basic.nack": true}
	conn := dialConfig(t, url, amqp.Config{Properties: props})
	ch := channel(t, conn)
	q := declareQueue(t, ch, nil)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-confirms:
		t.Fatalf("confirmed during the alarm: %+v", c)
	case <-time.After(300 * time.Millisecond):
	}
	srv.SetResourceLimits(0, 0)
	if c := recv(t, confirms, "confirm after the alarm"); !c.Ack {
		t.Errorf("nacked: %+v", c)
	}
}
