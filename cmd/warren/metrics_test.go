package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestPrometheusEndpoints runs the real binary and scrapes its registries after a publish and
// a consumer: /metrics counts what the client did, per-object has the queue's, channel's and
// connection's own series and the message size histogram, detailed has the family asked for
// and only it, an unknown registry is RabbitMQ's 404 and a POST is 405.
func TestPrometheusEndpoints(t *testing.T) {
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
	if _, err := ch.QueueDeclare("po", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{50, 2000} {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "po", false, false, amqp.Publishing{Body: make([]byte, size)})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatal("publish nacked")
		}
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("po", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries // held unacked: prefetch 1

	fetch := func(path string, wantStatus int) string {
		t.Helper()
		resp, err := http.Get("http://" + promAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("GET %s: %s, want %d\n%s", path, resp.Status, wantStatus, body)
		}
		return string(body)
	}
	aggregated := fetch("/metrics", http.StatusOK)
	for _, want := range []string{
		`rabbitmq_global_messages_received_total{protocol="amqp091"} 2`,
		"rabbitmq_queue_messages_ready 1",
		"rabbitmq_queue_messages_unacked 1",
		"rabbitmq_connections 1",
		"rabbitmq_identity_info{",
		`rabbitmq_version="3.10.25"`,
	} {
		if !strings.Contains(aggregated, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, aggregated)
		}
	}
	resp, err := http.Post("http://"+promAddr+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s, want 405", resp.Status)
	}
	chName := conn.LocalAddr().String() + " -> " + addr + " (1)"
	perObject := fetch("/metrics/per-object", http.StatusOK)
	for _, want := range []string{
		`rabbitmq_queue_messages_ready{vhost="/",queue="po"} 1`,
		`rabbitmq_queue_messages_unacked{vhost="/",queue="po"} 1`,
		`rabbitmq_queue_consumers{vhost="/",queue="po"} 1`,
		`rabbitmq_channel_messages_unacked{channel="` + chName + `"} 1`,
		`rabbitmq_consumer_prefetch{channel="` + chName + `"} 1`,
		`rabbitmq_connection_channels{channel="` + conn.LocalAddr().String() + " -> " + addr + `"} 1`,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="100"} 1`,
		`rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="10000"} 2`,
		`rabbitmq_message_size_bytes_sum{protocol="amqp091"} 2050`,
		"rabbitmq_identity_info{",
	} {
		if !strings.Contains(perObject, want) {
			t.Errorf("/metrics/per-object lacks %q:\n%s", want, perObject)
		}
	}
	detailed := fetch("/metrics/detailed?family=queue_coarse_metrics", http.StatusOK)
	if !strings.Contains(detailed, `rabbitmq_detailed_queue_messages{vhost="/",queue="po"} 2`) {
		t.Errorf("/metrics/detailed?family=queue_coarse_metrics lacks the queue:\n%s", detailed)
	}
	if strings.Contains(detailed, "rabbitmq_detailed_queue_consumers") || strings.Contains(detailed, "rabbitmq_global_") {
		t.Errorf("/metrics/detailed has families not asked for:\n%s", detailed)
	}
	if body := fetch("/metrics/foo", http.StatusNotFound); body != "Unknown Registry" {
		t.Errorf("/metrics/foo: %q, want Unknown Registry", body)
	}
}
