package configs

import (
	"strings"
	"testing"
)

// TestPrometheusListen: the key defaults to RabbitMQ's :15692, takes an address or off, and
// anything else is an error at its line.
func TestPrometheusListen(t *testing.T) {
	if got := DefaultBroker().PrometheusListen; got != ":15692" {
		t.Errorf("default %q, want :15692", got)
	}
	for _, v := range []string{"off", "127.0.0.1:9419", ":0"} {
		b, err := ParseBroker("/x/warren.yaml", []byte("prometheus-listen: \""+v+"\"\n"))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if b.PrometheusListen != v {
			t.Errorf("prometheus-listen %q parsed as %q", v, b.PrometheusListen)
		}
	}
	for _, v := range []string{"nonsense", ":99999", ":http"} {
		_, err := ParseBroker("/x/warren.yaml", []byte("prometheus-listen: \""+v+"\"\n"))
		if err == nil || !strings.Contains(err.Error(), "warren.yaml:1") || !strings.Contains(err.Error(), "prometheus-listen") {
			t.Errorf("prometheus-listen %q: %v, want an error at line 1 naming prometheus-listen", v, err)
		}
	}
}
