package metrics

import "github.com/prometheus/client_golang/prometheus"

// scope says on which endpoints a node-wide family is served.
type scope uint8

const (
	// onAggregated families are on /metrics.
	onAggregated scope = 1 << iota
	// onPerObject families are on /metrics/per-object as one node-wide series.
	onPerObject
	onBoth = onAggregated | onPerObject
)

// Tables are RabbitMQ's metric tables: /metrics/detailed?family= names them.
const (
	tableChurn         = "connection_churn_metrics"
	tableNodeCoarse    = "node_coarse_metrics"
	tableNode          = "node_metrics"
	tableQueueCoarse   = "queue_coarse_metrics"
	tableQueueConsumer = "queue_consumer_count"
	tableQueue         = "queue_metrics"
	tableChannel       = "channel_metrics"
	tableConnection    = "connection_metrics"
	tableConnCoarse    = "connection_coarse_metrics"
	tableVhostStatus   = "vhost_status"
	tableExchBindings  = "exchange_bindings"
	tableExchNames     = "exchange_names"
)

// family is one metric: its name without the rabbitmq_ prefix, help, type and label names,
// the endpoints that serve it node-wide, and the table /metrics/detailed serves it from ("":
// none).
type family struct {
	name, help string
	kind       prometheus.ValueType
	labels     []string
	on         scope
	table      string
}

var (
	protocolLabel  = []string{"protocol"}
	queueTypeLabel = []string{"protocol", "queue_type"}
)

// nodeFamilies lists every node-wide metric the endpoints emit, in RabbitMQ's names.
func nodeFamilies() []family {
	g, c, u := prometheus.GaugeValue, prometheus.CounterValue, prometheus.UntypedValue
	return []family{
		{"build_info", "RabbitMQ & Erlang/OTP version info", u, []string{"rabbitmq_version", "prometheus_plugin_version", "prometheus_client_version", "erlang_version", "product_name", "product_version"}, onBoth, ""},
		{"identity_info", "RabbitMQ node & cluster identity info", u, []string{"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"}, onBoth, ""},
		{"connections", "Connections currently open", g, nil, onBoth, ""},
		{"channels", "Channels currently open", g, nil, onBoth, ""},
		{"consumers", "Consumers currently connected", g, nil, onBoth, ""},
		{"queues", "Queues available", g, nil, onBoth, ""},
		// Per object, these are labelled series of the queue and channel tables.
		{"channel_consumers", "Consumers on a channel", g, nil, onAggregated, ""},
		{"queue_messages_ready", "Messages ready to be delivered to consumers", g, nil, onAggregated, ""},
		{"queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", g, nil, onAggregated, ""},
		{"queue_messages", "Sum of ready and unacknowledged messages - total queue depth", g, nil, onAggregated, ""},
		{"connections_opened_total", "Total number of connections opened", c, nil, onBoth, tableChurn},
		{"connections_closed_total", "Total number of connections closed or terminated", c, nil, onBoth, tableChurn},
		{"channels_opened_total", "Total number of channels opened", c, nil, onBoth, tableChurn},
		{"channels_closed_total", "Total number of channels closed", c, nil, onBoth, tableChurn},
		{"queues_declared_total", "Total number of queues declared", c, nil, onBoth, tableChurn},
		{"queues_created_total", "Total number of queues created", c, nil, onBoth, tableChurn},
		{"queues_deleted_total", "Total number of queues deleted", c, nil, onBoth, tableChurn},
		{"global_consumers", "Current number of consumers", g, protocolLabel, onBoth, ""},
		{"global_messages_received_total", "Total number of messages received from publishers", c, protocolLabel, onBoth, ""},
		{"global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations", c, protocolLabel, onBoth, ""},
		{"global_messages_routed_total", "Total number of messages routed to queues or streams", c, protocolLabel, onBoth, ""},
		{"global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", c, protocolLabel, onBoth, ""},
		{"global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", c, protocolLabel, onBoth, ""},
		{"global_messages_confirmed_total", "Total number of messages confirmed to publishers", c, protocolLabel, onBoth, ""},
		{"global_messages_delivered_total", "Total number of messages delivered to consumers", c, queueTypeLabel, onBoth, ""},
		{"global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", c, queueTypeLabel, onBoth, ""},
		{"global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", c, queueTypeLabel, onBoth, ""},
		{"global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", c, queueTypeLabel, onBoth, ""},
		{"global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", c, queueTypeLabel, onBoth, ""},
		{"global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", c, queueTypeLabel, onBoth, ""},
		{"global_messages_redelivered_total", "Total number of messages redelivered to consumers", c, queueTypeLabel, onBoth, ""},
		{"global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", c, queueTypeLabel, onBoth, ""},
		{"process_open_fds", "Open file descriptors", g, nil, onBoth, tableNodeCoarse},
		{"process_open_tcp_sockets", "Open TCP sockets", g, nil, onBoth, tableNodeCoarse},
		{"process_resident_memory_bytes", "Memory used in bytes", g, nil, onBoth, tableNodeCoarse},
		{"disk_space_available_bytes", "Disk space available in bytes", g, nil, onBoth, tableNodeCoarse},
		{"process_max_fds", "Open file descriptors limit", g, nil, onBoth, tableNode},
		{"process_max_tcp_sockets", "Open TCP sockets limit", g, nil, onBoth, tableNode},
		{"resident_memory_limit_bytes", "Memory high watermark in bytes", g, nil, onBoth, tableNode},
		{"disk_space_available_limit_bytes", "Free disk space low watermark in bytes", g, nil, onBoth, tableNode},
		{"alarms_memory_used_watermark", "is 1 if VM memory watermark alarm is in effect", u, nil, onAggregated, ""},
		{"alarms_free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect", u, nil, onAggregated, ""},
	}
}

// The message size histogram (RabbitMQ 4's rabbit_msg_size_metrics), on /metrics and
// /metrics/per-object.
const (
	sizeName = "message_size_bytes"
	sizeHelp = "Size of messages received from publishers"
)
