package server_test

import (
	"context"
	"errors"
	"net"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
)

// A topic permission from the definitions files is enforced on publish, with {username}
// expanded, and a reload that drops it lifts it for the connection's next publish.
func TestTopicPermissionFromFiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop()})
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	h, err := configs.HashPassword("pw", "")
	if err != nil {
		t.Fatal(err)
	}
	base := func() *configs.Definitions {
		return &configs.Definitions{
			Users:       []configs.User{{Name: "app", PasswordHash: h, HashingAlgorithm: "rabbit_password_hashing_sha256"}},
			Permissions: []configs.Permission{{User: "app", Vhost: "/", Configure: "*", Write: "*", Read: "*"}},
		}
	}
	limited := base()
	limited.TopicPermissions = []configs.TopicPermission{{User: "app", Vhost: "/", Exchange: "amq.topic", Write: `^{username}\.`, Read: ".*"}}
	if _, err := srv.ApplyDefinitions(limited); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial("amqp://app:pw@" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	// publish publishes with confirms and returns nil on ack, the channel's close otherwise.
	publish := func(key string) error {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		dc, err := ch.PublishWithDeferredConfirm("amq.topic", key, false, false, amqp.Publishing{})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-dc.Done():
			if dc.Acked() {
				_ = ch.Close()
				return nil
			}
			return <-closed
		case e := <-closed:
			return e
		}
	}
	if err := publish("app.x"); err != nil {
		t.Fatalf("publish with app.x: %v", err)
	}
	err = publish("other.x")
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 403 ||
		ae.Reason != "ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' in vhost '/' refused for user 'app'" {
		t.Fatalf("publish with other.x: %v, want 403 with RabbitMQ's text", err)
	}
	if got := srv.TopicPermissions(); len(got) != 1 || !got[0].FromFiles {
		t.Errorf("topic permissions listed = %+v, want the file's one", got)
	}
	if _, err := srv.PutTopicPermission("/", "app", "amq.topic", ".*", ".*"); err == nil {
		t.Error("the management API changed a topic permission the files declare")
	}

	if _, err := srv.ApplyDefinitions(base()); err != nil {
		t.Fatal(err)
	}
	if err := publish("other.x"); err != nil {
		t.Fatalf("after the reload dropped the topic permission, publish with other.x: %v", err)
	}
}
