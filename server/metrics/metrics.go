// Package metrics is Warren's Prometheus endpoint: RabbitMQ 3.10's rabbitmq_prometheus
// aggregated /metrics, with its metric names, types and labels, so RabbitMQ's Grafana
// dashboards and alerts work unchanged. Values are read at scrape time: the broker's atomic
// counters (server.Stats) and the model's listings (vhost.Vhost.Queues); nothing here runs on
// the message path.
package metrics

import (
	"fmt"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/vhost"
)

// RabbitMQVersion is the RabbitMQ version whose behaviour Warren follows, reported as
// rabbitmq_build_info's rabbitmq_version.
const RabbitMQVersion = "3.10.25"

// clientVersion is the prometheus client library's version (prometheus_client_version).
const clientVersion = "1.25.0"

// Source is what the collector reads from the broker; *server.Server is one.
type Source interface {
	Stats() server.Stats
	Vhosts() []*vhost.Vhost
}

// Identity names the node for rabbitmq_identity_info and rabbitmq_build_info.
type Identity struct {
	Node      string // rabbitmq_node, e.g. warren@host
	Cluster   string // rabbitmq_cluster; "" is Node
	ClusterID string // rabbitmq_cluster_permanent_id; "" is "warren-cluster-id-" + Cluster
	Product   server.Product
}

// collector is a prometheus.Collector that builds every metric at scrape time.
type collector struct {
	src   Source
	id    Identity
	descs map[string]*prometheus.Desc
	kinds map[string]prometheus.ValueType
	log   zerolog.Logger
}

// family is one metric: its name without the rabbitmq_ prefix, help, type and label names.
type family struct {
	name, help string
	kind       prometheus.ValueType
	labels     []string
}

var (
	protocolLabel  = []string{"protocol"}
	queueTypeLabel = []string{"protocol", "queue_type"}
)

// families lists every metric the collector emits, in RabbitMQ's names.
func families() []family {
	g, c, u := prometheus.GaugeValue, prometheus.CounterValue, prometheus.UntypedValue
	return []family{
		{"build_info", "RabbitMQ & Erlang/OTP version info", u, []string{"rabbitmq_version", "prometheus_plugin_version", "prometheus_client_version", "erlang_version", "product_name", "product_version"}},
		{"identity_info", "RabbitMQ node & cluster identity info", u, []string{"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"}},
		{"connections", "Connections currently open", g, nil},
		{"channels", "Channels currently open", g, nil},
		{"consumers", "Consumers currently connected", g, nil},
		{"channel_consumers", "Consumers on a channel", g, nil},
		{"queues", "Queues available", g, nil},
		{"queue_messages_ready", "Messages ready to be delivered to consumers", g, nil},
		{"queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", g, nil},
		{"queue_messages", "Sum of ready and unacknowledged messages - total queue depth", g, nil},
		{"connections_opened_total", "Total number of connections opened", c, nil},
		{"connections_closed_total", "Total number of connections closed or terminated", c, nil},
		{"channels_opened_total", "Total number of channels opened", c, nil},
		{"channels_closed_total", "Total number of channels closed", c, nil},
		{"queues_declared_total", "Total number of queues declared", c, nil},
		{"queues_created_total", "Total number of queues created", c, nil},
		{"queues_deleted_total", "Total number of queues deleted", c, nil},
		{"global_messages_received_total", "Total number of messages received from publishers", c, protocolLabel},
		{"global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations", c, protocolLabel},
		{"global_messages_routed_total", "Total number of messages routed to queues or streams", c, protocolLabel},
		{"global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", c, protocolLabel},
		{"global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", c, protocolLabel},
		{"global_messages_confirmed_total", "Total number of messages confirmed to publishers", c, protocolLabel},
		{"global_messages_delivered_total", "Total number of messages delivered to consumers", c, queueTypeLabel},
		{"global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", c, queueTypeLabel},
		{"global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", c, queueTypeLabel},
		{"global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", c, queueTypeLabel},
		{"global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", c, queueTypeLabel},
		{"global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", c, queueTypeLabel},
		{"global_messages_redelivered_total", "Total number of messages redelivered to consumers", c, queueTypeLabel},
		{"global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", c, queueTypeLabel},
		{"process_resident_memory_bytes", "Memory used in bytes", g, nil},
		{"process_open_fds", "Open file descriptors", g, nil},
		{"process_max_fds", "Open file descriptors limit", g, nil},
		{"process_open_tcp_sockets", "Open TCP sockets", g, nil},
		{"process_max_tcp_sockets", "Open TCP sockets limit", g, nil},
		{"disk_space_available_bytes", "Disk space available in bytes", g, nil},
		{"resident_memory_limit_bytes", "Memory high watermark in bytes", g, nil},
		{"disk_space_available_limit_bytes", "Free disk space low watermark in bytes", g, nil},
		{"alarms_memory_used_watermark", "is 1 if VM memory watermark alarm is in effect", u, nil},
		{"alarms_free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect", u, nil},
	}
}

// NewCollector returns a collector of src's metrics, named by id.
func NewCollector(src Source, id Identity, log zerolog.Logger) prometheus.Collector {
	if id.Cluster == "" {
		id.Cluster = id.Node
	}
	if id.ClusterID == "" {
		id.ClusterID = "warren-cluster-id-" + id.Cluster
	}
	if id.Product.Name == "" {
		id.Product.Name = server.DefaultProductName
	}
	if id.Product.Version == "" {
		id.Product.Version = server.Version
	}
	c := &collector{src: src, id: id, log: log,
		descs: make(map[string]*prometheus.Desc), kinds: make(map[string]prometheus.ValueType)}
	for _, f := range families() {
		c.descs[f.name] = prometheus.NewDesc("rabbitmq_"+f.name, f.help, f.labels, nil)
		c.kinds[f.name] = f.kind
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	emit := func(name string, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(c.descs[name], c.kinds[name], v, labels...)
		if err != nil {
			// A programming error (label count): the scrape goes on without this metric.
			c.log.Error().Err(err).Str("metric", name).Msg("metric not built")
			return
		}
		ch <- m
	}
	id := c.id
	emit("build_info", 1, RabbitMQVersion, server.Version, clientVersion, runtime.Version(), id.Product.Name, id.Product.Version)
	emit("identity_info", 1, id.Node, id.Cluster, id.ClusterID)

	st := c.src.Stats()
	var queues, ready, unacked, consumers int
	for _, v := range c.src.Vhosts() {
		for _, q := range v.Queues() {
			queues++
			ready += q.Ready
			unacked += q.Unacked
			consumers += q.Consumers
		}
	}
	emit("connections", float64(st.Connections))
	emit("channels", float64(st.Channels))
	emit("consumers", float64(consumers))
	emit("channel_consumers", float64(consumers)) // every consumer is on a channel: the same sum
	emit("queues", float64(queues))
	emit("queue_messages_ready", float64(ready))
	emit("queue_messages_unacked", float64(unacked))
	emit("queue_messages", float64(ready+unacked))

	emit("connections_opened_total", float64(st.ConnectionsOpened))
	emit("connections_closed_total", float64(st.ConnectionsClosed))
	emit("channels_opened_total", float64(st.ChannelsOpened))
	emit("channels_closed_total", float64(st.ChannelsClosed))
	emit("queues_declared_total", float64(st.QueuesDeclared))
	emit("queues_created_total", float64(st.QueuesCreated))
	emit("queues_deleted_total", float64(st.QueuesDeleted))

	const proto, classic = "amqp091", "rabbit_classic_queue"
	emit("global_messages_received_total", float64(st.MessagesReceived), proto)
	emit("global_messages_received_confirm_total", float64(st.MessagesReceivedConfirm), proto)
	emit("global_messages_routed_total", float64(st.MessagesRouted), proto)
	emit("global_messages_unroutable_dropped_total", float64(st.MessagesUnroutableDropped), proto)
	emit("global_messages_unroutable_returned_total", float64(st.MessagesUnroutableReturned), proto)
	emit("global_messages_confirmed_total", float64(st.MessagesConfirmed), proto)
	delivered := st.DeliveredConsumeAutoAck + st.DeliveredConsumeManualAck + st.DeliveredGetAutoAck + st.DeliveredGetManualAck
	emit("global_messages_delivered_total", float64(delivered), proto, classic)
	emit("global_messages_delivered_consume_auto_ack_total", float64(st.DeliveredConsumeAutoAck), proto, classic)
	emit("global_messages_delivered_consume_manual_ack_total", float64(st.DeliveredConsumeManualAck), proto, classic)
	emit("global_messages_delivered_get_auto_ack_total", float64(st.DeliveredGetAutoAck), proto, classic)
	emit("global_messages_delivered_get_manual_ack_total", float64(st.DeliveredGetManualAck), proto, classic)
	emit("global_messages_get_empty_total", float64(st.GetEmpty), proto, classic)
	emit("global_messages_redelivered_total", float64(st.MessagesRedelivered), proto, classic)
	emit("global_messages_acknowledged_total", float64(st.MessagesAcknowledged), proto, classic)

	emit("process_resident_memory_bytes", float64(max(st.MemoryUsed, 0)))
	if open, limit, ok := fds(); ok {
		emit("process_open_fds", float64(open))
		emit("process_max_fds", float64(limit))
		// Warren has no socket limit of its own (RabbitMQ's ranch one): descriptors are it.
		emit("process_max_tcp_sockets", float64(limit))
	}
	emit("process_open_tcp_sockets", float64(st.Connections))
	if st.DiskFreeKnown {
		emit("disk_space_available_bytes", float64(st.DiskFree))
	}
	emit("resident_memory_limit_bytes", float64(max(st.MemoryLimit, 0)))
	emit("disk_space_available_limit_bytes", float64(max(st.DiskFreeLimit, 0)))
	emit("alarms_memory_used_watermark", b2f(st.MemoryAlarm))
	emit("alarms_free_disk_space_watermark", b2f(st.DiskAlarm))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler serves RabbitMQ's aggregated /metrics for src. Other paths are 404 and methods
// other than GET and HEAD 405, as with rabbitmq_prometheus.
func Handler(src Source, id Identity, log zerolog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src, id, log))
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
	return mux
}

// errorLog passes promhttp's errors to zerolog.
type errorLog struct{ log zerolog.Logger }

func (e errorLog) Println(v ...any) {
	e.log.Error().Str("component", "metrics").Msg(fmt.Sprint(v...))
}
