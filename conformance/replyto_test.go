package conformance

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Direct reply-to (amq.rabbitmq.reply-to), checked against RabbitMQ 3.10.8: consume no-ack from
// the pseudo-queue, publish requests with reply_to amq.rabbitmq.reply-to, and replies published
// to the default exchange with the rewritten name come straight back.

const replyTo = "amq.rabbitmq.reply-to"

// rpcClient is a channel consuming from amq.rabbitmq.reply-to.
type rpcClient struct {
	ch      *amqp.Channel
	replies <-chan amqp.Delivery
	tag     string
}

func newRPCClient(t *testing.T, conn *amqp.Connection) *rpcClient {
	t.Helper()
	ch := channel(t, conn)
	tag := uniqueName(t, "ctag")
	return &rpcClient{ch: ch, replies: consume(t, ch, replyTo, tag, true), tag: tag}
}

// request publishes body to queue with reply_to amq.rabbitmq.reply-to.
func (c *rpcClient) request(t *testing.T, queue, correlationID, body string) {
	t.Helper()
	err := c.ch.Publish("", queue, false, false, amqp.Publishing{ReplyTo: replyTo, CorrelationId: correlationID, Body: []byte(body)})
	if err != nil {
		t.Fatalf("publish request: %v", err)
	}
}

// rpcServer declares a request queue on its own connection and consumes from it.
func rpcServer(t *testing.T) (queue string, requests <-chan amqp.Delivery, p *publisher) {
	t.Helper()
	conn, ch := connChannel(t)
	queue = declareQueue(t, ch, nil)
	return queue, consume(t, ch, queue, "", true), newPublisher(t, conn)
}

func TestReplyToCapability(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	caps, _ := conn.Properties["capabilities"].(amqp.Table)
	if v, ok := caps["direct_reply_to"].(bool); !ok || !v {
		t.Errorf("capability direct_reply_to = %#v, want true", caps["direct_reply_to"])
	}
}

// TestReplyToRoundTrip: the request's reply_to names the client's channel, the server replies
// through the default exchange from another connection, and the reply arrives on the client's
// reply consumer with the request's correlation id, properties and body.
func TestReplyToRoundTrip(t *testing.T) {
	t.Parallel()
	queue, requests, srv := rpcServer(t)
	client := newRPCClient(t, dial(t))

	client.request(t, queue, "c1", "ping")
	req := recv(t, requests, "request")
	if !strings.HasPrefix(req.ReplyTo, replyTo+".") || len(req.ReplyTo) <= len(replyTo)+1 {
		t.Fatalf("request reply_to = %q, want it rewritten to %s.<name>", req.ReplyTo, replyTo)
	}
	if req.CorrelationId != "c1" || string(req.Body) != "ping" {
		t.Errorf("request = %q correlation %q, want ping c1", req.Body, req.CorrelationId)
	}
	// The name is a queue to queue.declare while its consumer lives: 0 messages, 1 consumer.
	if msgs, consumers := queueCounts(t, srv.ch, req.ReplyTo); msgs != 0 || consumers != 1 {
		t.Errorf("declare %s = %d messages %d consumers, want 0 and 1", req.ReplyTo, msgs, consumers)
	}

	// Published with confirms and persistent: acked, and delivered at once.
	srv.publish("", req.ReplyTo, false, amqp.Publishing{CorrelationId: req.CorrelationId, DeliveryMode: amqp.Persistent,
		Headers: amqp.Table{"h": "v"}, Body: []byte("pong")})
	rep := recv(t, client.replies, "reply")
	if string(rep.Body) != "pong" || rep.CorrelationId != "c1" || rep.Headers["h"] != "v" {
		t.Errorf("reply = %q correlation %q headers %v, want pong c1 h=v", rep.Body, rep.CorrelationId, rep.Headers)
	}
	if rep.ConsumerTag != client.tag || rep.Exchange != "" || rep.RoutingKey != req.ReplyTo || rep.Redelivered {
		t.Errorf("reply delivered with tag %q exchange %q key %q redelivered %v, want %q, \"\", %q, false",
			rep.ConsumerTag, rep.Exchange, rep.RoutingKey, rep.Redelivered, client.tag, req.ReplyTo)
	}

	// A second request on the channel carries a name that works the same way.
	client.request(t, queue, "c2", "ping2")
	req2 := recv(t, requests, "second request")
	srv.publish("", req2.ReplyTo, false, amqp.Publishing{CorrelationId: req2.CorrelationId, Body: []byte("pong2")})
	if rep := recv(t, client.replies, "second reply"); string(rep.Body) != "pong2" || rep.CorrelationId != "c2" {
		t.Errorf("second reply = %q correlation %q, want pong2 c2", rep.Body, rep.CorrelationId)
	}
}

// TestReplyToConsumeRules: the reply consumer acknowledges nothing, and a channel has one.
func TestReplyToConsumeRules(t *testing.T) {
	t.Parallel()
	conn := dial(t)

	ch := channel(t, conn)
	closes := notifyClose(ch)
	_, err := ch.Consume(replyTo, "", false, false, false, false, nil)
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
	wantClosed(t, closes, amqp.PreconditionFailed, "PRECONDITION_FAILED - reply consumer cannot acknowledge")

	ch = channel(t, conn)
	consume(t, ch, replyTo, "", true)
	_, err = ch.Consume(replyTo, "", true, false, false, false, nil)
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - reply consumer already set")

	// Another channel of the same connection has its own.
	consume(t, channel(t, conn), replyTo, "", true)
}

// TestReplyToPublishWithoutConsumer: reply_to amq.rabbitmq.reply-to on a channel that does not
// consume from it closes the channel with 406; the connection's other channels are unaffected.
func TestReplyToPublishWithoutConsumer(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	client := newRPCClient(t, conn)
	other := channel(t, conn)
	closes := notifyClose(other)
	if err := other.Publish("", "no-such-queue", false, false, amqp.Publishing{ReplyTo: replyTo, Body: []byte("x")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	wantClosed(t, closes, amqp.PreconditionFailed, "PRECONDITION_FAILED - fast reply consumer does not exist")

	// After basic.cancel the client's channel has no reply consumer either.
	if err := client.ch.Cancel(client.tag, false); err != nil {
		t.Fatalf("basic.cancel: %v", err)
	}
	closes = notifyClose(client.ch)
	client.request(t, "no-such-queue", "c", "x")
	wantClosed(t, closes, amqp.PreconditionFailed, "PRECONDITION_FAILED - fast reply consumer does not exist")
}

// TestReplyToStaleName: once the reply consumer is cancelled, or its channel or connection
// closed, the name routes nowhere (a mandatory reply is returned 312 NO_ROUTE) and is no
// queue; so is a made-up name. The replier's channel stays open.
func TestReplyToStaleName(t *testing.T) {
	t.Parallel()
	queue, requests, srv := rpcServer(t)
	stale := func(end func(c *rpcClient, conn *amqp.Connection)) string {
		conn := dialConfig(t, brokerURL, amqp.Config{})
		c := newRPCClient(t, conn)
		c.request(t, queue, "", "ping")
		name := recv(t, requests, "request").ReplyTo
		end(c, conn)
		return name
	}
	names := map[string]string{
		"cancelled": stale(func(c *rpcClient, _ *amqp.Connection) {
			if err := c.ch.Cancel(c.tag, false); err != nil {
				t.Fatalf("basic.cancel: %v", err)
			}
		}),
		"channel closed": stale(func(c *rpcClient, _ *amqp.Connection) {
			if err := c.ch.Close(); err != nil {
				t.Fatalf("channel.close: %v", err)
			}
		}),
		"connection closed": stale(func(_ *rpcClient, conn *amqp.Connection) {
			if err := conn.Close(); err != nil {
				t.Fatalf("connection.close: %v", err)
			}
		}),
		"made up": replyTo + ".abc",
	}
	for why, name := range names {
		srv.publish("", name, true, amqp.Publishing{Body: []byte("late reply")})
		r, ok := srv.returned()
		if !ok {
			t.Errorf("%s: mandatory reply to %s was not returned", why, name)
		} else if r.ReplyCode != amqp.NoRoute || r.ReplyText != "NO_ROUTE" || r.RoutingKey != name {
			t.Errorf("%s: returned %d %q key %q, want 312 NO_ROUTE key %q", why, r.ReplyCode, r.ReplyText, r.RoutingKey, name)
		}
		ch := channel(t, dial(t))
		_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"' in vhost '/'")
	}
}

// TestReplyToDeclare: queue.declare of amq.rabbitmq.reply-to succeeds, passive or not, with 0
// messages and 1 consumer, even with no reply consumer; other names under it are 404.
func TestReplyToDeclare(t *testing.T) {
	t.Parallel()
	conn, ch := connChannel(t)
	for _, passive := range []bool{true, false} {
		declare := ch.QueueDeclare
		if passive {
			declare = ch.QueueDeclarePassive
		}
		q, err := declare(replyTo, false, false, false, false, nil)
		if err != nil {
			t.Fatalf("declare %s (passive %v): %v", replyTo, passive, err)
		}
		if q.Name != replyTo || q.Messages != 0 || q.Consumers != 1 {
			t.Errorf("declare %s (passive %v) = %+v, want 0 messages 1 consumer", replyTo, passive, q)
		}
	}
	for _, name := range []string{replyTo + ".abc", replyTo + "x"} {
		for _, passive := range []bool{true, false} {
			ch := channel(t, conn)
			declare := ch.QueueDeclare
			if passive {
				declare = ch.QueueDeclarePassive
			}
			_, err := declare(name, false, false, false, false, nil)
			wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"' in vhost '/'")
		}
	}
	// It is no queue to get from or bind.
	ch = channel(t, conn)
	_, _, err := ch.Get(replyTo, true)
	wantError(t, err, amqp.NotFound, "NOT_FOUND - no queue '"+replyTo+"' in vhost '/'")
}

// TestReplyToMandatoryDelivered: a mandatory reply that reached its consumer is not returned.
// RabbitMQ 3.10 returns it 312 NO_ROUTE although it delivered it (the reply goes to no queue);
// Warren returns only what it could not deliver (docs/compatibility.md).
func TestReplyToMandatoryDelivered(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 returns a delivered mandatory reply as unroutable too")
	t.Parallel()
	queue, requests, srv := rpcServer(t)
	client := newRPCClient(t, dial(t))
	client.request(t, queue, "c", "ping")
	name := recv(t, requests, "request").ReplyTo
	srv.publish("", name, true, amqp.Publishing{Body: []byte("pong")})
	if r, ok := srv.returned(); ok {
		t.Errorf("delivered reply returned %d %q", r.ReplyCode, r.ReplyText)
	}
	if rep := recv(t, client.replies, "reply"); string(rep.Body) != "pong" {
		t.Errorf("reply = %q, want pong", rep.Body)
	}
}

// TestReplyToManagementPublish: the management API's publish reaches a reply consumer through
// the default exchange, and refuses reply_to amq.rabbitmq.reply-to (it consumes nothing) with
// RabbitMQ's 406 as a 400. (Its "routed" differs: RabbitMQ says false for a delivered reply,
// Warren true; docs/compatibility.md.)
func TestReplyToManagementPublish(t *testing.T) {
	a := mgmtAPI(t)
	queue, requests, _ := rpcServer(t)
	client := newRPCClient(t, dial(t))
	client.request(t, queue, "c", "ping")
	name := recv(t, requests, "request").ReplyTo

	apiPublish(t, a, "amq.default", name, map[string]any{"correlation_id": "c"}, "via the API", "string")
	if rep := recv(t, client.replies, "reply"); string(rep.Body) != "via the API" || rep.CorrelationId != "c" {
		t.Errorf("reply = %q correlation %q, want \"via the API\" c", rep.Body, rep.CorrelationId)
	}
	wantAPIError(t, a, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{
		"routing_key": queue, "properties": map[string]any{"reply_to": replyTo}, "payload": "x", "payload_encoding": "string"},
		400, "bad_request", reasonText("406 PRECONDITION_FAILED - fast reply consumer does not exist"))
}

// TestReplyToSelfAndCC: a channel may answer its own requests, and a reply name in a CC header
// reaches the consumer like a routing key (the delivery carries the publish's routing key).
func TestReplyToSelfAndCC(t *testing.T) {
	t.Parallel()
	queue, requests, srv := rpcServer(t)
	client := newRPCClient(t, dial(t))
	client.request(t, queue, "c", "ping")
	name := recv(t, requests, "request").ReplyTo

	if err := client.ch.Publish("", name, false, false, amqp.Publishing{Body: []byte("self")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if rep := recv(t, client.replies, "reply to itself"); string(rep.Body) != "self" {
		t.Errorf("reply = %q, want self", rep.Body)
	}
	other := uniqueName(t, "nowhere")
	srv.publish("", other, false, amqp.Publishing{Headers: amqp.Table{"CC": []any{name}}, Body: []byte("cc")})
	rep := recv(t, client.replies, "reply by CC")
	if string(rep.Body) != "cc" || rep.RoutingKey != other {
		t.Errorf("reply = %q with key %q, want cc with key %q", rep.Body, rep.RoutingKey, other)
	}
}

// TestReplyToTransaction: a reply published in a transaction reaches the caller at commit, and
// a rolled-back one never does. RabbitMQ 3.10 delivers it at publish time, before the commit
// and despite a rollback (docs/compatibility.md).
func TestReplyToTransaction(t *testing.T) {
	warrenOnly(t, "RabbitMQ 3.10 delivers a reply published in a transaction at once, even if rolled back")
	t.Parallel()
	conn := dial(t)
	queue, requests, _ := rpcServer(t)
	client := newRPCClient(t, conn)
	client.request(t, queue, "c", "ping")
	name := recv(t, requests, "request").ReplyTo

	tx := channel(t, conn)
	if err := tx.Tx(); err != nil {
		t.Fatalf("tx.select: %v", err)
	}
	publish := func(body string) {
		t.Helper()
		if err := tx.Publish("", name, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publish("rolled back")
	if err := tx.TxRollback(); err != nil {
		t.Fatalf("tx.rollback: %v", err)
	}
	publish("committed")
	// tx.rollback-ok and tx.commit-ok are answered in order on the connection the caller shares,
	// so anything delivered before the commit would arrive first.
	if err := tx.TxCommit(); err != nil {
		t.Fatalf("tx.commit: %v", err)
	}
	if rep := recv(t, client.replies, "committed reply"); string(rep.Body) != "committed" {
		t.Errorf("first reply = %q, want only the committed one", rep.Body)
	}
}

// TestReplyToConsumeTwiceSameTag: a second reply consume with the first one's tag is the 406 of a
// second reply consumer, not a reused tag; a queue consumer's tag is a reused tag (530).
func TestReplyToConsumeTwiceSameTag(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	client := newRPCClient(t, conn)
	_, err := client.ch.Consume(replyTo, client.tag, true, false, false, false, nil)
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - reply consumer already set")

	conn2, ch := connChannel(t)
	q := declareQueue(t, ch, nil)
	consume(t, ch, q, "taken", false)
	closes := notifyConnClose(conn2)
	_, err = ch.Consume(replyTo, "taken", true, false, false, false, nil)
	wantError(t, err, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'taken'")
	wantClosed(t, closes, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'taken'")
}
