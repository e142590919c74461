package server_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
)

// A reload that removes a user closes that user's open connections with 320; other users'
// connections stay open.
func TestReloadClosesRemovedUsersConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop()})
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	user := func(name string) configs.User {
		h, err := configs.HashPassword(name+"-pw", "")
		if err != nil {
			t.Fatal(err)
		}
		return configs.User{Name: name, PasswordHash: h, HashingAlgorithm: "rabbit_password_hashing_sha256"}
	}
	perm := func(name string) configs.Permission {
		return configs.Permission{User: name, Vhost: "/", Configure: "*", Write: "*", Read: "*"}
	}
	both := &configs.Definitions{Users: []configs.User{user("app"), user("ops")}, Permissions: []configs.Permission{perm("app"), perm("ops")}}
	if _, err := srv.ApplyDefinitions(both); err != nil {
		t.Fatal(err)
	}
	dial := func(name string) *amqp.Connection {
		c, err := amqp.Dial("amqp://" + name + ":" + name + "-pw@" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	app, ops := dial("app"), dial("ops")
	appClosed := app.NotifyClose(make(chan *amqp.Error, 1))

	onlyOps := &configs.Definitions{Users: []configs.User{user("ops")}, Permissions: []configs.Permission{perm("ops")}}
	if _, err := srv.ApplyDefinitions(onlyOps); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-appClosed:
		if e == nil || e.Code != 320 || !strings.Contains(e.Reason, "user 'app' was deleted") {
			t.Fatalf("app's connection closed with %v, want 320 naming the user", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("app's connection is still open 5 s after the user was removed")
	}
	ch, err := ops.Channel()
	if err != nil {
		t.Fatalf("ops's connection should stay usable: %v", err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("ops's connection should stay usable: %v", err)
	}
}

// Beyond max-connections, connection.open is refused with 530, RabbitMQ's text; a slot that
// frees up is usable again.
func TestMaxConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop(), MaxConnections: 1})
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	url := "amqp://guest:guest@" + ln.Addr().String() + "/"
	first, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = amqp.Dial(url)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 530 || ae.Reason != "NOT_ALLOWED - connection refused: node connection limit (1) is reached" {
		t.Fatalf("second connection: %v, want 530 with the limit", err)
	}
	_ = first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := amqp.Dial(url)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first connection closed, a new one is still refused: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
