package conformance

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// testConfigProduct checks the product name and version that clients see in connection.start's
// server-properties: Warren's own by default, the file's product section when set (for clients
// and tools that check for "RabbitMQ"), and the --product-name/--product-version flags over the
// file.
func testConfigProduct(t *testing.T, bin string) {
	for _, c := range []struct {
		name        string
		file        string // appended to simpleConfig
		flags       []string
		wantProduct string
		wantVersion string
	}{
		{"default", "", nil, "Warren", server.Version},
		{"file", "product: {name: RabbitMQ, version: 3.10.8}\n", nil, "RabbitMQ", "3.10.8"},
		{"flag over file", "product:\n  name: RabbitMQ\n  version: 3.10.8\n", []string{"--product-version", "3.10.7"}, "RabbitMQ", "3.10.7"},
		{"flags only", "", []string{"--product-name", "RabbitMQ", "--product-version", "3.10.8"}, "RabbitMQ", "3.10.8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, addr := t.TempDir(), freeAddr(t)
			writeCfgFile(t, dir, "warren.yaml", simpleConfig(addr)+c.file)
			writeCfgFile(t, dir, "defs.yaml", "queues: []\n")
			b := startCfgBrokerIn(t, bin, dir, addr, c.flags...)
			props := b.dial("guest", "guest", "/").Properties
			if got := props["product"]; got != c.wantProduct {
				t.Errorf("server-properties product = %#v, want %q", got, c.wantProduct)
			}
			if got := props["version"]; got != c.wantVersion {
				t.Errorf("server-properties version = %#v, want %q", got, c.wantVersion)
			}
			// The rest of the table is unchanged: the capabilities clients branch on are there.
			if caps, _ := props["capabilities"].(amqp.Table); caps["publisher_confirms"] != true {
				t.Errorf("server-properties capabilities = %#v, want publisher_confirms true among them", props["capabilities"])
			}
		})
	}
}
