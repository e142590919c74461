package webui_test

// Tests of pages whose endpoints other parts of Warren add (listings of channels, exchanges,
// users, permissions and policies; declaring and deleting; get, publish, purge, redrive;
// definitions). Until the broker serves an endpoint, the page says so and the test fails with
// that message and the endpoint it waits for.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	needChannels    = "GET /api/channels (the listings)"
	needExchanges   = "GET, PUT and DELETE /api/exchanges/{vhost}/{name} (the listings, declaring and deleting)"
	needPublish     = "POST /api/exchanges/{vhost}/{name}/publish (the operations endpoints)"
	needQueueWrites = "PUT and DELETE /api/queues/{vhost}/{name} and DELETE …/contents (declaring, deleting, purging)"
	needRedrive     = "POST /api/queues/{vhost}/{name}/redrive (the operations endpoints)"
	needDefinitions = "GET and POST /api/definitions (access control and definitions)"
	needUsers       = "GET/PUT/DELETE /api/users and /api/permissions (access control)"
	needPolicies    = "GET/PUT/DELETE /api/policies (access control)"
)

// The channels page lists a client's channels, with confirm mode and prefetch.
func TestChannelsPage(t *testing.T) {
	b := newBroker(t)
	c := b.dial(t, "channels-client")
	plain := channel(t, c)
	if err := plain.Qos(25, 0, false); err != nil {
		t.Fatal(err)
	}
	confirming := channel(t, c)
	if err := confirming.Confirm(false); err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, b)
	tb.open("#/channels")
	tb.login("guest", "guest")
	// A channel's name is its connection's ("client -> server") and its number.
	mine := fmt.Sprintf(`[...document.querySelectorAll('#channels tr[data-key]')].filter((r) => r.dataset.key.startsWith(%s))`, js(c.LocalAddr().String()+" -> "))
	tb.waitIn("#channels", "the client's two channels", mine+`.length === 2`, needChannels)
	tb.waitUntil("the confirm channel", mine+`.some((r) => r.textContent.includes('confirm'))`, "")
	tb.waitUntil("the prefetch", mine+`.some((r) => [...r.cells].some((d) => d.textContent === '25'))`, "")
	tb.shot("channels")
}

// An exchange added in the UI exists for clients; a message published to it from the UI
// reaches a bound queue; deleting it in the UI deletes it.
func TestExchangesAddPublishDelete(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/exchanges/%2F/events", "/queues/%2F/events.audit")
	c := b.dial(t, "exchanges-client")
	ch := channel(t, c)
	tb := newTab(t, b)
	tb.open("#/exchanges")
	tb.login("guest", "guest")
	tb.waitIn("#exchanges", "the built-in exchanges", row("/|amq.fanout"), needExchanges)
	tb.click("Add exchange", `document.getElementById('add-exchange')`)
	tb.do("filling in the exchange",
		chromedp.WaitVisible(chromedp.CSS("#exchange-form input[name=name]")),
		chromedp.SetValue(chromedp.CSS("#exchange-form input[name=name]"), "events"),
		chromedp.SetValue(chromedp.CSS("#exchange-form select[name=type]"), "fanout"))
	tb.click("save", `document.querySelector('#exchange-form button.submit')`)
	tb.waitIn("body", "the new exchange", row("/|events"), needExchanges)
	if err := channel(t, c).ExchangeDeclarePassive("events", "fanout", true, false, false, false, nil); err != nil {
		t.Fatalf("the exchange added in the UI is not there for clients: %v", err)
	}
	if _, err := ch.QueueDeclare("events.audit", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("events.audit", "", "events", false, nil); err != nil {
		t.Fatal(err)
	}
	tb.shot("exchanges")

	tb.click("Publish", row("/|events")+`.querySelector('button.publish-exchange')`)
	tb.do("filling in the message",
		chromedp.WaitVisible(chromedp.CSS("#publish-form #f-payload")),
		chromedp.SetValue(chromedp.CSS("#publish-form #f-payload"), "from the exchanges page"))
	tb.shot("exchanges-publish-dialog")
	tb.click("publish", `document.querySelector('#publish-form button.submit')`)
	tb.waitIn("body", "the dialog closed", `!document.getElementById('publish-form')`, needPublish)
	msg, ok, err := ch.Get("events.audit", true)
	if err != nil || !ok || string(msg.Body) != "from the exchanges page" {
		t.Fatalf("the bound queue has %q (ok=%v, err=%v), want the message published in the UI", msg.Body, ok, err)
	}

	tb.click("Delete", row("/|events")+`.querySelector('button.delete-exchange')`)
	tb.do("confirming", chromedp.WaitVisible(chromedp.CSS("#confirm-delete button.submit")))
	tb.click("confirm", `document.querySelector('#confirm-delete button.submit')`)
	tb.waitIn("body", "the exchange gone", `!`+row("/|events"), needExchanges)
	err = channel(t, c).ExchangeDeclarePassive("events", "fanout", true, false, false, false, nil)
	if !isCode(err, amqp.NotFound) {
		t.Errorf("after deleting it in the UI, a passive declare of the exchange = %v, want 404", err)
	}
}

// From the queue page: a queue added in the UI takes a message published on its page, purging
// it empties it, and deleting it deletes it and returns to the queues list.
func TestQueuePublishPurgeDelete(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/queues/%2F/payments")
	c := b.dial(t, "queue-actions-client")
	tb := newTab(t, b)
	tb.open("#/queues")
	tb.login("guest", "guest")
	tb.waitUntil("the queues list", `document.querySelector('#queues table')`, "")
	tb.click("Add queue", `document.getElementById('add-queue')`)
	tb.do("naming the queue",
		chromedp.WaitVisible(chromedp.CSS("#queue-form input[name=name]")),
		chromedp.SetValue(chromedp.CSS("#queue-form input[name=name]"), "payments"))
	tb.click("save", `document.querySelector('#queue-form button.submit')`)
	tb.waitIn("body", "the new queue", row("/|payments"), needQueueWrites)

	tb.click("the queue link", row("/|payments")+`.querySelector('a.queue-link')`)
	tb.waitUntil("the queue page", `document.getElementById('queue-name')?.textContent === 'payments'`, "")
	tb.do("writing a message", chromedp.SetValue(chromedp.CSS("#publish-form #f-payload"), "refund 17"))
	tb.click("Publish message", `document.getElementById('publish-message')`)
	tb.waitIn("#publish-form", "published", `document.querySelector('.publish-result')?.textContent === 'Message published.'`, needPublish)
	tb.waitUntil("1 ready", tile("messages_ready")+` === '1'`, "")
	ch := channel(t, c)
	q, err := ch.QueueDeclarePassive("payments", true, false, false, false, nil)
	if err != nil || q.Messages != 1 {
		t.Fatalf("after publishing in the UI the queue has %d messages (%v), want 1", q.Messages, err)
	}

	tb.click("Purge", `document.getElementById('purge')`)
	tb.do("confirming the purge", chromedp.WaitVisible(chromedp.CSS("#confirm-purge button.submit")))
	tb.click("confirm", `document.querySelector('#confirm-purge button.submit')`)
	tb.waitIn("body", "purged", `!document.getElementById('confirm-purge') && `+tile("messages_ready")+` === '0'`, needQueueWrites)
	if q, err := ch.QueueDeclarePassive("payments", true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Fatalf("after purging in the UI the queue has %d messages (%v), want 0", q.Messages, err)
	}

	tb.click("Delete", `document.getElementById('delete-queue')`)
	tb.do("confirming the delete", chromedp.WaitVisible(chromedp.CSS("#confirm-delete button.submit")))
	tb.click("confirm", `document.querySelector('#confirm-delete button.submit')`)
	tb.waitIn("body", "back on the queues list", `location.hash === '#/queues' && document.querySelector('#queues table') && !`+row("/|payments"), needQueueWrites)
	_, err = channel(t, c).QueueDeclarePassive("payments", true, false, false, false, nil)
	if !isCode(err, amqp.NotFound) {
		t.Errorf("after deleting it in the UI, a passive declare of the queue = %v, want 404", err)
	}
}

// "Move messages back" on a dead-letter queue returns a rejected message to the queue it was
// dead-lettered from.
func TestRedrive(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/queues/%2F/work", "/queues/%2F/work.dlq")
	ch := channel(t, b.dial(t, "redrive-client"))
	if _, err := ch.QueueDeclare("work.dlq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("work", true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "work.dlq"}); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "work", "job 7")
	m, ok, err := ch.Get("work", false)
	if err != nil || !ok {
		t.Fatalf("getting the job: ok=%v err=%v", ok, err)
	}
	if err := m.Reject(false); err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, b)
	tb.open("#/queues/%2F/work.dlq")
	tb.login("guest", "guest")
	tb.waitUntil("the dead letter", tile("messages_ready")+` === '1'`, "")
	tb.click("Move messages back", `document.getElementById('redrive')`)
	tb.waitIn("#redrive-result", "moved", `document.querySelector('#redrive-result .state-ok')`, needRedrive)
	tb.waitUntil("the DLQ empty", tile("messages_ready")+` === '0'`, "")
	tb.shot("queue-redrive")
	back, ok, err := ch.Get("work", true)
	if err != nil || !ok || string(back.Body) != "job 7" {
		t.Fatalf("work has %q (ok=%v err=%v), want the job moved back", back.Body, ok, err)
	}
}

// Exporting shows the broker's definitions, including a client's durable queue; importing a
// file declares what it defines.
func TestDefinitionsExportImport(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/queues/%2F/ledger", "/queues/%2F/imported")
	c := b.dial(t, "definitions-client")
	ch := channel(t, c)
	if _, err := ch.QueueDeclare("ledger", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	tb := newTab(t, b)
	tb.open("#/definitions")
	tb.login("guest", "guest")
	tb.click("Export", `document.getElementById('export')`)
	tb.waitIn("#export-result", "the export", `document.getElementById('export-json')`, needDefinitions)
	var defs struct {
		Queues []struct{ Name string } `json:"queues"`
	}
	if err := json.Unmarshal([]byte(tb.text("#export-json")), &defs); err != nil {
		t.Fatalf("the exported JSON: %v", err)
	}
	if !slices.ContainsFunc(defs.Queues, func(q struct{ Name string }) bool { return q.Name == "ledger" }) {
		t.Errorf("exported queues %+v, want ledger among them", defs.Queues)
	}
	tb.waitUntil("the per-section counts", row("queues"), "")

	file := filepath.Join(t.TempDir(), "defs.json")
	if err := os.WriteFile(file, []byte(`{"queues":[{"name":"imported","vhost":"/","durable":true,"auto_delete":false,"arguments":{}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tb.do("choosing the file", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{file}))
	tb.click("Import", `document.getElementById('import')`)
	tb.waitIn("#import-result", "imported", `document.querySelector('#import-result .import-ok')`, needDefinitions)
	tb.shot("definitions")
	if _, err := channel(t, c).QueueDeclarePassive("imported", true, false, false, false, nil); err != nil {
		t.Errorf("the imported queue is not there: %v", err)
	}
}

// A user added in the UI with permissions set in the UI can connect; once deleted in the UI,
// it cannot.
func TestUsersAndPermissions(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/users/billing")
	tb := newTab(t, b)
	tb.open("#/users")
	tb.login("guest", "guest")
	tb.waitIn("#users", "guest listed", row("guest"), needUsers)
	tb.click("Add user", `document.getElementById('add-user')`)
	tb.do("filling in the user",
		chromedp.WaitVisible(chromedp.CSS("#user-form input[name=name]")),
		chromedp.SetValue(chromedp.CSS("#user-form input[name=name]"), "billing"),
		chromedp.SetValue(chromedp.CSS("#user-form input[name=password]"), "s3cret-pw"),
		chromedp.SetValue(chromedp.CSS("#user-form input[name=tags]"), "management"))
	tb.click("save", `document.querySelector('#user-form button.submit')`)
	tb.waitIn("body", "the new user", row("billing"), needUsers)
	tb.click("Set permission", `document.getElementById('set-permission')`)
	tb.do("choosing the user",
		chromedp.WaitVisible(chromedp.CSS("#permission-form select[name=user]")),
		chromedp.SetValue(chromedp.CSS("#permission-form select[name=user]"), "billing"))
	tb.click("save", `document.querySelector('#permission-form button.submit')`)
	tb.waitIn("body", "the permission", row("/|billing"), needUsers)
	tb.shot("users")
	url := "amqp://billing:s3cret-pw@" + b.addr + "/"
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("the user added in the UI cannot connect: %v", err)
	}
	_ = c.Close()

	tb.click("Delete", row("billing")+`.querySelector('button.delete-user')`)
	tb.do("confirming", chromedp.WaitVisible(chromedp.CSS("#confirm-delete button.submit")))
	tb.click("confirm", `document.querySelector('#confirm-delete button.submit')`)
	tb.waitIn("body", "the user gone", `!`+row("billing"), needUsers)
	if c, err := amqp.Dial(url); err == nil {
		_ = c.Close()
		t.Error("the user deleted in the UI can still connect")
	}
}

// A policy added in the UI applies to queues (here max-length 1); deleted, it is gone.
func TestPolicies(t *testing.T) {
	b := newBroker(t)
	b.remove(t, "/policies/%2F/cap", "/queues/%2F/capped")
	c := b.dial(t, "policies-client")
	tb := newTab(t, b)
	tb.open("#/policies")
	tb.login("guest", "guest")
	tb.waitIn("#policies", "the policies list", `document.querySelector('#policies table')`, needPolicies)
	tb.click("Add policy", `document.getElementById('add-policy')`)
	tb.do("filling in the policy",
		chromedp.WaitVisible(chromedp.CSS("#policy-form input[name=name]")),
		chromedp.SetValue(chromedp.CSS("#policy-form input[name=name]"), "cap"),
		chromedp.SetValue(chromedp.CSS("#policy-form input[name=pattern]"), "^capped$"),
		chromedp.SetValue(chromedp.CSS("#policy-form select[name=apply_to]"), "queues"),
		chromedp.SetValue(chromedp.CSS("#policy-form textarea[name=definition]"), `{"max-length": 1}`))
	tb.click("save", `document.querySelector('#policy-form button.submit')`)
	tb.waitIn("body", "the new policy", row("/|cap"), needPolicies)
	tb.shot("policies")
	ch := channel(t, c)
	if _, err := ch.QueueDeclare("capped", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "capped", "1", "2", "3")
	// The broker may count the messages a moment after the publishes: look until it is 1.
	for deadline := time.Now().Add(waitTimeout); ; {
		q, err := ch.QueueDeclarePassive("capped", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("under the UI's max-length 1 policy the queue holds %d messages, want 1", q.Messages)
		}
		time.Sleep(100 * time.Millisecond) // the next look at the queue
	}
	tb.click("Delete", row("/|cap")+`.querySelector('button.delete-policy')`)
	tb.do("confirming", chromedp.WaitVisible(chromedp.CSS("#confirm-delete button.submit")))
	tb.click("confirm", `document.querySelector('#confirm-delete button.submit')`)
	tb.waitIn("body", "the policy gone", `!`+row("/|cap"), needPolicies)
}

// isCode reports whether err is an AMQP error with the reply code.
func isCode(err error, code int) bool {
	var e *amqp.Error
	return errors.As(err, &e) && e.Code == code
}
