package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
)

// A wrong password is refused with the API's reason and keeps the login form; guest/guest
// logs in, shows who is logged in, and survives a reload (the credentials are in
// sessionStorage); logging out forgets them.
func TestLogin(t *testing.T) {
	b := newBroker(t)
	tb := newTab(t, b)
	tb.open("#/overview")
	tb.do("filling in a wrong password",
		chromedp.WaitVisible(chromedp.CSS("#login-user")),
		chromedp.SetValue(chromedp.CSS("#login-user"), "guest"),
		chromedp.SetValue(chromedp.CSS("#login-pass"), "not-the-password"),
		chromedp.Click(chromedp.CSS("#login-submit")))
	tb.waitUntil("the refusal", `!document.getElementById('login-error').hidden`, "")
	// The reason is the API's: "Not_Authorized" from Warren, "Login failed" from RabbitMQ 3.10.8.
	if got := tb.text("#login-error"); !strings.HasPrefix(got, "Login failed: ") || len(got) == len("Login failed: ") {
		t.Errorf("login error = %q, want \"Login failed: \" and the API's reason", got)
	}
	if eval[bool](tb, `!document.getElementById('shell').hidden`) {
		t.Fatal("the console is shown after a refused login")
	}
	if eval[bool](tb, `sessionStorage.length > 0`) {
		t.Error("a refused login left credentials in sessionStorage")
	}
	tb.shot("login-refused")

	tb.login("guest", "guest")
	tb.waitUntil("the logged-in user", `document.getElementById('whoami').textContent.includes('guest (administrator)')`, "")
	tb.waitUntil("the overview", `document.querySelector('[data-total=queues]')`, "")
	if !eval[bool](tb, `!!sessionStorage.getItem('warren.credentials') && localStorage.length === 0`) {
		t.Error("the credentials are not (only) in sessionStorage")
	}
	tb.do("reloading", chromedp.Reload())
	tb.waitUntil("still logged in after a reload", `!document.getElementById('shell').hidden && document.querySelector('[data-total=queues]')`, "")
	tb.click("log out", `document.getElementById('logout')`)
	tb.waitUntil("the login form after logging out", `!document.getElementById('login').hidden && !sessionStorage.getItem('warren.credentials')`, "")
}

// The overview's tiles show what a client did: three queues declared, five messages
// published, three of them delivered to a consumer that has not acknowledged them.
func TestOverviewTotals(t *testing.T) {
	b := newBroker(t)
	srv := b.inProcess(t)
	c := b.dial(t, "overview-client")
	ch := channel(t, c)
	for _, q := range []string{"ov.a", "ov.b", "ov.c"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, ch, "ov.a", "a1", "a2")
	publish(t, ch, "ov.b", "b1", "b2", "b3")
	deliveries, err := ch.Consume("ov.b", "ov-consumer", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-deliveries:
		case <-time.After(waitTimeout):
			t.Fatal("the consumer got fewer than 3 messages")
		}
	}
	exchanges := len(srv.Vhosts()[0].Exchanges())

	tb := newTab(t, b)
	tb.open("#/overview")
	tb.login("guest", "guest")
	tb.waitUntil("the totals", tile("queues")+` !== ''`, "")
	want := map[string]string{
		"connections": "1", "channels": "1", "queues": "3", "consumers": "1", "exchanges": fmt.Sprint(exchanges),
		"messages_ready": "2", "messages_unacknowledged": "3", "messages": "5",
	}
	for k, v := range want {
		tb.waitUntil("the "+k+" tile", tile(k)+` === `+js(v), "")
	}
	// A second poll draws the charts' first rates.
	publish(t, ch, "ov.a", "a3")
	tb.waitUntil("the second poll", `Number(document.getElementById('updated').dataset.polls) >= 2`, "")
	tb.waitUntil("the new depth", tile("messages_ready")+` === '3'`, "")
	tb.shot("overview")
	tb.dark()
	tb.shot("overview-dark")
}

// The connections page lists a client by its connection name; closing it from the UI closes
// the client's connection with 320 CONNECTION_FORCED and the reason typed in.
func TestConnectionsClose(t *testing.T) {
	b := newBroker(t)
	c := b.dial(t, "orders-service")
	closed := c.NotifyClose(make(chan *amqp.Error, 1))

	tb := newTab(t, b)
	tb.open("#/connections")
	tb.login("guest", "guest")
	tb.waitUntil("the client's row", `[...document.querySelectorAll('#connections tr[data-key]')].some((r) => r.textContent.includes('orders-service'))`, "")
	tb.shot("connections")
	tb.click("the Close button", `[...document.querySelectorAll('#connections tr[data-key]')].find((r) => r.textContent.includes('orders-service')).querySelector('button.close-connection')`)
	tb.do("giving a reason",
		chromedp.WaitVisible(chromedp.CSS("#close-connection input[name=reason]")),
		chromedp.SetValue(chromedp.CSS("#close-connection input[name=reason]"), "maintenance window"))
	tb.shot("connections-close-dialog")
	tb.click("Close connection", `document.querySelector('#close-connection button.submit')`)
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("the connection closed without an error, want 320")
		}
		if err.Code != 320 || err.Reason != "CONNECTION_FORCED - maintenance window" {
			t.Errorf("the client got %d %q, want 320 \"CONNECTION_FORCED - maintenance window\"", err.Code, err.Reason)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the client's connection is still open")
	}
	tb.waitUntil("the row gone", `document.querySelector('#connections table') && ![...document.querySelectorAll('#connections tr[data-key]')].some((r) => r.textContent.includes('orders-service'))`, "")
}

// The queues list shows each queue's depth; its queue page shows the same depth.
func TestQueuesDepth(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/queues/%2F/orders", "/queues/%2F/invoices")
	ch := channel(t, b.dial(t, "depth-client"))
	for q, n := range map[string]int{"orders": 3, "invoices": 1} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			publish(t, ch, q, fmt.Sprintf("%s-%d", q, i))
		}
	}
	tb := newTab(t, b)
	tb.open("#/queues")
	tb.login("guest", "guest")
	tb.waitUntil("orders with 3 messages", row("/|orders")+`?.querySelector('.depth')?.textContent === '3'`, "")
	tb.waitUntil("invoices with 1 message", row("/|invoices")+`?.querySelector('.depth')?.textContent === '1'`, "")
	tb.shot("queues")
	tb.click("the orders link", row("/|orders")+`.querySelector('a.queue-link')`)
	tb.waitUntil("the queue page", `document.getElementById('queue-name')?.textContent === 'orders'`, "")
	tb.waitUntil("3 ready", tile("messages_ready")+` === '3'`, "")
	tb.waitUntil("3 in total", tile("messages")+` === '3'`, "")
	if got := eval[string](tb, `location.hash`); got != "#/queues/%2F/orders" {
		t.Errorf("queue page at %s, want #/queues/%%2F/orders", got)
	}
	tb.shot("queue")
	tb.dark()
	tb.shot("queue-dark")
}

// Getting a message from the queue page shows its payload and, with the default ack mode
// (ack_requeue_true, as RabbitMQ's UI), leaves it in the queue.
func TestGetMessagesKeepsThem(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/queues/%2F/inspect")
	ch := channel(t, b.dial(t, "get-client"))
	if _, err := ch.QueueDeclare("inspect", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "inspect", `{"order": 42, "state": "stuck"}`)
	tb := newTab(t, b)
	tb.open("#/queues/%2F/inspect")
	tb.login("guest", "guest")
	tb.waitUntil("1 ready", tile("messages_ready")+` === '1'`, "")
	if got := eval[string](tb, `document.querySelector('#get-form select[name=ackmode]').value`); got != "ack_requeue_true" {
		t.Errorf("default ack mode = %q, want ack_requeue_true", got)
	}
	tb.click("Get messages", `document.getElementById('get-messages')`)
	tb.waitIn("#get-results", "the payload", `document.querySelector('#get-results .payload')?.textContent === '{"order": 42, "state": "stuck"}'`,
		"POST /api/queues/{vhost}/{name}/get (the operations endpoints)")
	tb.shot("queue-get")
	msg, ok, err := ch.Get("inspect", true)
	if err != nil || !ok {
		t.Fatalf("the message is not in the queue any more after the UI got it: ok=%v err=%v", ok, err)
	}
	if string(msg.Body) != `{"order": 42, "state": "stuck"}` || !msg.Redelivered {
		t.Errorf("after the UI's get: body %q redelivered %v, want the same body, redelivered", msg.Body, msg.Redelivered)
	}
}

// publish publishes each body to queue q through the default exchange, persistent.
func publish(t *testing.T, ch *amqp.Channel, q string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
		cancel()
		if err != nil {
			t.Fatalf("publishing to %s: %v", q, err)
		}
	}
}
