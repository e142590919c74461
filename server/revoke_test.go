package server_test

import (
	"context"
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
