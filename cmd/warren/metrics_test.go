package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestPrometheusEndpoint runs the real binary with --prometheus-listen and scrapes /metrics
// after a publish: the endpoint is served and counts what the client did.
func TestPrometheusEndpoint(t *testing.T) {
	promAddr := freeAddr(t)
	_, addr, lines := startBroker(t, "--prometheus-listen", promAddr)
	go func() {
		for range lines {
		}
	}()
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("m", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "m", false, false, amqp.Publishing{Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if !dc.Wait() {
		t.Fatal("publish nacked")
	}
	resp, err := http.Get("http://" + promAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`rabbitmq_global_messages_received_total{protocol="amqp091"} 1`,
		"rabbitmq_queue_messages_ready 1",
		"rabbitmq_connections 1",
		"rabbitmq_identity_info{",
		`rabbitmq_version="3.10.25"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	resp, err = http.Post("http://"+promAddr+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s, want 405", resp.Status)
	}
}
