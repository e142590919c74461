package conformance

import (
	"os"
	"path/filepath"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitDefsFixture is `rabbitmqctl export_definitions -` from RabbitMQ 3.10.8, unedited but
// for the indentation. The passwords are guest/guest, importer/imp0rt! and app/secret;
// permission and policy patterns are RabbitMQ's regular expressions: importer and guest have
// .* on /shop, app has configure ^app\., write ^(app|w)\., read ^(app|r)\.; the policy
// shop-limits gives ^orders\. queues in /shop max-length 5 (orders.work's own x-max-length is
// 10000); orders (topic) routes order.* to orders.work.
const rabbitDefsFixture = "testdata/config/rabbitmq-3.10.8-definitions.json"

// testConfigRabbitMQDefinitions starts the broker with a RabbitMQ definitions.json export as its
// definitions file: the users log in with their RabbitMQ passwords, the regular-expression
// permissions and the policy apply as they did in RabbitMQ, and the exchanges, queues and
// bindings route.
func testConfigRabbitMQDefinitions(t *testing.T, bin string) {
	fixture, err := os.ReadFile(rabbitDefsFixture)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	writeCfgFile(t, dir, "rabbitmq.json", string(fixture))
	writeCfgFile(t, dir, "warren.yaml", "listeners:\n  - protocol: amqp\n    address: "+addr+"\ndata-dir: data\ndefinitions: [rabbitmq.json]\n")
	if r := runWarren(t, bin, "", "", "config", "check", filepath.Join(dir, "rabbitmq.json")); r.code != 0 {
		t.Errorf("warren config check on RabbitMQ's export:\n%v", r)
	}
	b := startCfgBrokerIn(t, bin, dir, addr)

	wantLoginRefused(t, b.url("importer", "wrong", "/shop"), "importer with a wrong password")
	wantVhostRefused(t, b.url("guest", "guest", "/other"), "guest on /other, where the export gives it no permissions",
		"NOT_ALLOWED - access to vhost '/other' refused for user 'guest'")
	wantChannelOK(t, b.dial("guest", "guest", "/"), "guest declares a queue on /", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("rmq.guest", false, false, true, false, nil)
		return err
	})

	imp := b.dial("importer", "imp0rt!", "/shop")
	ch := channel(t, imp)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for _, body := range seq("o", 7) {
		confirmPublish(t, ch, "orders", "order.new", amqp.Publishing{Body: []byte(body)})
	}
	equalStrings(t, "orders.work under the policy's max-length 5", getBodies(t, ch, "orders.work"), []string{"o2", "o3", "o4", "o5", "o6"})
	for _, q := range []string{"n.q", "r.q", "w.q", "app.q"} {
		if _, ok := passiveQueue(t, imp, q); !ok {
			t.Errorf("queue %s of the export does not exist in /shop", q)
		}
	}

	app := b.dial("app", "secret", "/shop")
	wantChannelOK(t, app, "app declares app.new (configure ^app\\.)", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("app.new", false, false, false, false, nil)
		return err
	})
	wantChannelClosedBy(t, app, "app declares xapp.new", 403,
		"ACCESS_REFUSED - access to queue 'xapp.new' in vhost '/shop' refused for user 'app'", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("xapp.new", false, false, false, false, nil)
			return err
		})
	wantChannelClosedBy(t, app, "app reads orders.work", 403,
		"ACCESS_REFUSED - access to queue 'orders.work' in vhost '/shop' refused for user 'app'", func(ch *amqp.Channel) error {
			_, _, err := ch.Get("orders.work", true)
			return err
		})
}
