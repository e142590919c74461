package conformance

import (
	"net/http"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Topic permissions (https://www.rabbitmq.com/docs/access-control#topic-authorisation): on a
// topic exchange, a user with a topic permission for it may publish only with routing keys
// matching its write pattern and bind only with binding keys matching its read pattern; the
// patterns are regular expressions in which {username} and {vhost} are expanded. These tests
// pass against RabbitMQ 3.10 too (they need MGMT_URL to make the user).

// topicUser makes a user with every permission on "/" and the given topic permissions
// (exchange → write, read), and returns a channel of theirs.
func topicUser(t *testing.T, a *api, topics map[string][2]string) (name string, conn *amqp.Connection) {
	t.Helper()
	name = uniqueName(t, "user")
	deleteUserLater(t, a, name)
	a.json(http.MethodPut, "/api/users/"+esc(name), map[string]any{"password": "pw", "tags": ""}, http.StatusCreated, nil)
	a.json(http.MethodPut, "/api/permissions/%2F/"+esc(name), map[string]any{"configure": ".*", "write": ".*", "read": ".*"},
		http.StatusCreated, nil)
	for x, wr := range topics {
		// RabbitMQ answers 201 for the user's first topic permission in the vhost, 204 after.
		if code, body := a.do(http.MethodPut, "/api/topic-permissions/%2F/"+esc(name),
			map[string]any{"exchange": x, "write": wr[0], "read": wr[1]}); code != http.StatusCreated && code != http.StatusNoContent {
			t.Fatalf("PUT topic permission on %s: %d %s", x, code, body)
		}
	}
	return name, dialConfig(t, amqpURLAs(t, name, "pw", "/"), amqp.Config{})
}

// publishConfirmed publishes on a fresh confirming channel of conn and waits for the ack, or
// returns the channel's close when the broker refuses the publish.
func publishConfirmed(t *testing.T, conn *amqp.Connection, exchange, key string) *amqp.Error {
	t.Helper()
	ch := channel(t, conn)
	closed := notifyClose(ch)
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	if err := ch.Publish(exchange, key, false, false, amqp.Publishing{Body: []byte(key)}); err != nil {
		t.Fatalf("publish to %s with %q: %v", exchange, key, err)
	}
	select {
	case c, ok := <-confirms:
		if ok && c.Ack {
			_ = ch.Close()
			return nil
		}
		return recv(t, closed, "the channel's close after a refused publish to "+exchange+" with "+key)
	case err := <-closed:
		return err
	case <-timeoutAfter():
		t.Fatalf("publish to %s with %q: no confirm and no close", exchange, key)
		return nil
	}
}

// Publishing to a topic exchange checks the routing key against the write pattern, with
// {username} expanded; a refused publish closes the channel with 403 and RabbitMQ's text.
func TestTopicPermissionWrite(t *testing.T) {
	a := mgmtAPI(t)
	x := uniqueName(t, "x")
	_, ch := connChannel(t)
	if err := ch.ExchangeDeclare(x, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deleteExchangeLater(t, x)
	user, conn := topicUser(t, a, map[string][2]string{x: {`^{username}\.`, ".*"}, "amq.direct": {"^nothing$", "^nothing$"}})

	if err := publishConfirmed(t, conn, x, user+".orders"); err != nil {
		t.Fatalf("publish with a routing key matching ^{username}\\.: %v", err)
	}
	err := publishConfirmed(t, conn, x, "other.orders")
	if err == nil {
		t.Fatal("publish with a routing key outside the write pattern was accepted")
	}
	checkError(t, err, amqp.AccessRefused,
		"ACCESS_REFUSED - access to topic 'other.orders' in exchange '"+x+"' in vhost '/' refused for user '"+user+"'")

	// Topic permissions apply to topic exchanges only, and only to the exchange they name.
	if err := publishConfirmed(t, conn, "amq.direct", "other.orders"); err != nil {
		t.Errorf("publish to a direct exchange with a topic permission: %v", err)
	}
	if err := publishConfirmed(t, conn, "amq.topic", "other.orders"); err != nil {
		t.Errorf("publish to a topic exchange the user has no topic permission for: %v", err)
	}
}

// Binding a queue to a topic exchange checks the binding key against the read pattern (with
// {vhost} expanded), and so does unbinding.
func TestTopicPermissionRead(t *testing.T) {
	a := mgmtAPI(t)
	user, conn := topicUser(t, a, map[string][2]string{"amq.topic": {".*", `^allowed\.|^{vhost}$`}})
	ch := channel(t, conn)
	q := declareQueue(t, ch, nil)
	if err := ch.QueueBind(q, "allowed.#", "amq.topic", false, nil); err != nil {
		t.Fatalf("bind with a key matching the read pattern: %v", err)
	}
	if err := ch.QueueBind(q, "/", "amq.topic", false, nil); err != nil {
		t.Fatalf("bind with the key {vhost} expands to: %v", err)
	}
	if err := ch.QueueUnbind(q, "allowed.#", "amq.topic", nil); err != nil {
		t.Fatalf("unbind with a key matching the read pattern: %v", err)
	}
	err := ch.QueueBind(q, "secret.#", "amq.topic", false, nil)
	wantError(t, err, amqp.AccessRefused,
		"ACCESS_REFUSED - access to topic 'secret.#' in exchange 'amq.topic' in vhost '/' refused for user '"+user+"'")

	ch = channel(t, conn)
	err = ch.QueueUnbind(q, "secret.#", "amq.topic", nil)
	wantError(t, err, amqp.AccessRefused,
		"ACCESS_REFUSED - access to topic 'secret.#' in exchange 'amq.topic' in vhost '/' refused for user '"+user+"'")
}

// An empty pattern matches only the empty routing key, as RabbitMQ's "^$".
func TestTopicPermissionEmptyPattern(t *testing.T) {
	a := mgmtAPI(t)
	_, conn := topicUser(t, a, map[string][2]string{"amq.topic": {"", ""}})
	if err := publishConfirmed(t, conn, "amq.topic", ""); err != nil {
		t.Errorf("publish with an empty key under an empty write pattern: %v", err)
	}
	if err := publishConfirmed(t, conn, "amq.topic", "a"); err == nil {
		t.Error("publish with key \"a\" under an empty write pattern was accepted")
	} else {
		checkError(t, err, amqp.AccessRefused, "ACCESS_REFUSED - access to topic 'a' in exchange 'amq.topic'")
	}
}
