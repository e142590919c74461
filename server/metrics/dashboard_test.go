package metrics_test

import (
	"strings"
	"testing"
)

// overviewDashboard is every metric RabbitMQ's Grafana dashboard "RabbitMQ-Overview" (id 10991,
// the 3.10.25 revision) queries, with the type rabbitmq_prometheus gives it and the labels
// it must carry (mgmt-spec.md §5.4, "Minimum metric set").
var overviewDashboard = map[string]struct {
	typ    string
	labels string // "" for none; the series must be exactly name{labels}
}{
	"rabbitmq_queue_messages_ready":                               {"gauge", ""},
	"rabbitmq_queue_messages_unacked":                             {"gauge", ""},
	"rabbitmq_channels":                                           {"gauge", ""},
	"rabbitmq_channel_consumers":                                  {"gauge", ""},
	"rabbitmq_connections":                                        {"gauge", ""},
	"rabbitmq_queues":                                             {"gauge", ""},
	"rabbitmq_consumers":                                          {"gauge", ""},
	"rabbitmq_resident_memory_limit_bytes":                        {"gauge", ""},
	"rabbitmq_process_resident_memory_bytes":                      {"gauge", ""},
	"rabbitmq_process_max_fds":                                    {"gauge", ""},
	"rabbitmq_process_open_fds":                                   {"gauge", ""},
	"rabbitmq_process_max_tcp_sockets":                            {"gauge", ""},
	"rabbitmq_process_open_tcp_sockets":                           {"gauge", ""},
	"rabbitmq_queues_declared_total":                              {"counter", ""},
	"rabbitmq_queues_created_total":                               {"counter", ""},
	"rabbitmq_queues_deleted_total":                               {"counter", ""},
	"rabbitmq_channels_opened_total":                              {"counter", ""},
	"rabbitmq_channels_closed_total":                              {"counter", ""},
	"rabbitmq_connections_opened_total":                           {"counter", ""},
	"rabbitmq_connections_closed_total":                           {"counter", ""},
	"rabbitmq_global_messages_received_total":                     {"counter", `protocol="amqp091"`},
	"rabbitmq_global_messages_received_confirm_total":             {"counter", `protocol="amqp091"`},
	"rabbitmq_global_messages_confirmed_total":                    {"counter", `protocol="amqp091"`},
	"rabbitmq_global_messages_routed_total":                       {"counter", `protocol="amqp091"`},
	"rabbitmq_global_messages_unroutable_dropped_total":           {"counter", `protocol="amqp091"`},
	"rabbitmq_global_messages_unroutable_returned_total":          {"counter", `protocol="amqp091"`},
	"rabbitmq_global_messages_redelivered_total":                  {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_global_messages_acknowledged_total":                 {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_global_messages_get_empty_total":                    {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_global_messages_delivered_consume_auto_ack_total":   {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_global_messages_delivered_consume_manual_ack_total": {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_global_messages_delivered_get_auto_ack_total":       {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_global_messages_delivered_get_manual_ack_total":     {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	// Later revisions of the dashboard, and the brief's process gauges.
	"rabbitmq_global_messages_delivered_total":  {"counter", `protocol="amqp091",queue_type="rabbit_classic_queue"`},
	"rabbitmq_disk_space_available_limit_bytes": {"gauge", ""},
	"rabbitmq_alarms_memory_used_watermark":     {"untyped", ""},
	"rabbitmq_alarms_free_disk_space_watermark": {"untyped", ""},
}

// TestOverviewDashboardMetrics checks that every metric the Overview dashboard queries is on
// /metrics with RabbitMQ's type and labels, and that the identity the dashboard joins every
// query on is there once, with the labels it groups by.
func TestOverviewDashboardMetrics(t *testing.T) {
	_, metricsURL := startBroker(t)
	got, types := scrape(t, metricsURL)
	for name, want := range overviewDashboard {
		series := name
		if want.labels != "" {
			series += "{" + want.labels + "}"
		}
		if _, ok := got[series]; !ok {
			t.Errorf("%s missing", series)
		}
		if types[name] != want.typ {
			t.Errorf("%s has type %q, want %q", name, types[name], want.typ)
		}
	}
	var identity, build []string
	for series := range got {
		name, labels, _ := strings.Cut(series, "{")
		switch name {
		case "rabbitmq_identity_info":
			identity = append(identity, labels)
		case "rabbitmq_build_info":
			build = append(build, labels)
		default:
			// The dashboard adds rabbitmq_cluster and rabbitmq_node by joining on instance:
			// a metric that carried them itself would break the join.
			if strings.Contains(labels, "rabbitmq_cluster=") || strings.Contains(labels, "rabbitmq_node=") {
				t.Errorf("%s carries identity labels", series)
			}
		}
	}
	if len(identity) != 1 || got["rabbitmq_identity_info{"+identity[0]] != 1 {
		t.Fatalf("rabbitmq_identity_info series: %q, want one with value 1", identity)
	}
	for _, l := range []string{`rabbitmq_node="warren@test"`, `rabbitmq_cluster="warren@test"`, `rabbitmq_cluster_permanent_id="`} {
		if !strings.Contains(identity[0], l) {
			t.Errorf("rabbitmq_identity_info{%s lacks %s", identity[0], l)
		}
	}
	if len(build) != 1 {
		t.Fatalf("rabbitmq_build_info series: %q, want one", build)
	}
	for _, l := range []string{`rabbitmq_version="3.10.25"`, `erlang_version="`, `prometheus_plugin_version="`, `prometheus_client_version="`, `product_name="Warren"`, `product_version="`} {
		if !strings.Contains(build[0], l) {
			t.Errorf("rabbitmq_build_info{%s lacks %s", build[0], l)
		}
	}
	if types["rabbitmq_identity_info"] != "untyped" || types["rabbitmq_build_info"] != "untyped" {
		t.Errorf("identity and build info types %q, %q, want untyped", types["rabbitmq_identity_info"], types["rabbitmq_build_info"])
	}
}
