// Package metrics is Warren's Prometheus endpoint: RabbitMQ 3.10's rabbitmq_prometheus, with
// its metric names, types and labels, so RabbitMQ's Grafana dashboards and alerts work
// unchanged. /metrics is aggregated (one series per metric, summed over objects),
// /metrics/per-object has one series per queue, channel and connection, /metrics/detailed
// the tables a scraper asks for. Values are read at scrape time: the broker's atomic counters
// (server.Stats) and the model's listings (vhost.Vhost.Queues, Server.Channels); nothing
// here runs on the message path.
package metrics

import (
	"fmt"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/vhost"
)

// RabbitMQVersion is the RabbitMQ version whose behaviour Warren follows, reported as
// rabbitmq_build_info's rabbitmq_version.
const RabbitMQVersion = "3.10.25"

// clientVersion is the prometheus client library's version (prometheus_client_version).
const clientVersion = "1.25.0"

// Label values RabbitMQ gives Warren's only protocol and queue type.
const (
	protoAMQP091 = "amqp091"
	classicQueue = "rabbit_classic_queue"
)

// Source is what the endpoints read from the broker; *server.Server is one.
type Source interface {
	Stats() server.Stats
	Vhosts() []*vhost.Vhost
	Connections() []server.ConnectionInfo
	Channels() []server.ChannelInfo
	// QuorumGroups is this node's quorum queue Raft groups (nil outside a cluster).
	QuorumGroups() []server.QuorumGroupStatus
}

// Identity names the node for rabbitmq_identity_info and rabbitmq_build_info.
type Identity struct {
	Node      string // rabbitmq_node, e.g. warren@host
	Cluster   string // rabbitmq_cluster; "" is Node
	ClusterID string // rabbitmq_cluster_permanent_id; "" is "warren-cluster-id-" + Cluster
	Product   server.Product
}

func (id Identity) withDefaults() Identity {
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
	return id
}

// nodeValues is what a scrape reads once for the node-wide metrics.
type nodeValues struct {
	st                                server.Stats
	queues, ready, unacked, consumers int
	fdsOpen, fdsLimit                 uint64
	fdsKnown                          bool
}

// readNode reads the broker's counters, and sums the queues of qs (one listing per vhost).
// heldHere keeps the queues this node holds (in a cluster every node lists every replicated
// queue): as RabbitMQ, a node reports the queues it hosts (a quorum queue on its leader's
// node), so that summing a metric over the nodes counts each queue once.
func heldHere(qs []vhost.QueueInfo) []vhost.QueueInfo {
	out := qs[:0]
	for _, q := range qs {
		if q.Holder == "" {
			out = append(out, q)
		}
	}
	return out
}

func readNode(st server.Stats, qs [][]vhost.QueueInfo) *nodeValues {
	nv := &nodeValues{st: st}
	for _, list := range qs {
		for i := range list {
			q := &list[i]
			nv.queues++
			nv.ready += q.Ready
			nv.unacked += q.Unacked
			nv.consumers += q.Consumers
		}
	}
	nv.fdsOpen, nv.fdsLimit, nv.fdsKnown = fds()
	return nv
}

// emitFunc takes one sample of the node family name (nodeFamilies), labels in its order.
type emitFunc func(name string, v float64, labels ...string)

// emitNode gives every node-wide sample to emit, family by family; each endpoint keeps
// those it serves.
func emitNode(id Identity, nv *nodeValues, emit emitFunc) {
	emit("build_info", 1, RabbitMQVersion, server.Version, clientVersion, runtime.Version(), id.Product.Name, id.Product.Version)
	emit("identity_info", 1, id.Node, id.Cluster, id.ClusterID)

	st := &nv.st
	emit("connections", float64(st.Connections))
	emit("channels", float64(st.Channels))
	emit("consumers", float64(nv.consumers))
	emit("channel_consumers", float64(nv.consumers)) // every consumer is on a channel: the same sum
	emit("queues", float64(nv.queues))
	emit("queue_messages_ready", float64(nv.ready))
	emit("queue_messages_unacked", float64(nv.unacked))
	emit("queue_messages", float64(nv.ready+nv.unacked))

	emit("connections_opened_total", float64(st.ConnectionsOpened))
	emit("connections_closed_total", float64(st.ConnectionsClosed))
	emit("channels_opened_total", float64(st.ChannelsOpened))
	emit("channels_closed_total", float64(st.ChannelsClosed))
	emit("queues_declared_total", float64(st.QueuesDeclared))
	emit("queues_created_total", float64(st.QueuesCreated))
	emit("queues_deleted_total", float64(st.QueuesDeleted))

	const proto, classic = protoAMQP091, classicQueue
	emit("global_consumers", float64(nv.consumers), proto)
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

	if nv.fdsKnown {
		emit("process_open_fds", float64(nv.fdsOpen))
	}
	emit("process_open_tcp_sockets", float64(st.Connections))
	emit("process_resident_memory_bytes", float64(max(st.MemoryUsed, 0)))
	if st.DiskFreeKnown {
		emit("disk_space_available_bytes", float64(st.DiskFree))
	}
	if nv.fdsKnown {
		emit("process_max_fds", float64(nv.fdsLimit))
		// Warren has no socket limit of its own (RabbitMQ's ranch one): descriptors are it.
		emit("process_max_tcp_sockets", float64(nv.fdsLimit))
	}
	emit("resident_memory_limit_bytes", float64(max(st.MemoryLimit, 0)))
	emit("disk_space_available_limit_bytes", float64(max(st.DiskFreeLimit, 0)))
	emit("alarms_memory_used_watermark", b2f(st.MemoryAlarm))
	emit("alarms_free_disk_space_watermark", b2f(st.DiskAlarm))
}

// sizeBuckets returns the message size histogram's cumulative counts by upper bound (+Inf
// left out: it is the count), and the count.
func sizeBuckets(st *server.Stats) (buckets map[float64]uint64, count uint64) {
	bounds := server.MessageSizeBounds()
	buckets = make(map[float64]uint64, len(bounds))
	for i, b := range bounds {
		count += st.MessageSizes[i]
		buckets[float64(b)] = count
	}
	count += st.MessageSizes[len(bounds)]
	return buckets, count
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collector is the aggregated /metrics: a prometheus.Collector that builds every metric at
// scrape time.
type collector struct {
	src   Source
	id    Identity
	descs map[string]*prometheus.Desc
	kinds map[string]prometheus.ValueType
	size  *prometheus.Desc
	// raft are RabbitMQ's ra_metrics summed over this node's groups (raftFamilies' order),
	// then Warren's maxLag and offline.
	raft            []*prometheus.Desc
	raftKinds       []prometheus.ValueType
	maxLag, offline *prometheus.Desc
	log             zerolog.Logger
}

// NewCollector returns a collector of src's aggregated metrics, named by id.
func NewCollector(src Source, id Identity, log zerolog.Logger) prometheus.Collector {
	c := &collector{src: src, id: id.withDefaults(), log: log,
		descs: make(map[string]*prometheus.Desc), kinds: make(map[string]prometheus.ValueType),
		size: prometheus.NewDesc("rabbitmq_"+sizeName, sizeHelp, protocolLabel, nil)}
	for _, f := range nodeFamilies() {
		if f.on&onAggregated != 0 {
			c.descs[f.name] = prometheus.NewDesc("rabbitmq_"+f.name, f.help, f.labels, nil)
			c.kinds[f.name] = f.kind
		}
	}
	for _, f := range raftFamilies() {
		c.raft = append(c.raft, prometheus.NewDesc("rabbitmq_"+f.name, f.help, nil, nil))
		c.raftKinds = append(c.raftKinds, f.kind)
	}
	c.maxLag = prometheus.NewDesc(maxLagName, maxLagHelp, nil, nil)
	c.offline = prometheus.NewDesc(offlineName, offlineHelp, nil, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	for _, d := range c.raft {
		ch <- d
	}
	ch <- c.size
	ch <- c.maxLag
	ch <- c.offline
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	vhosts := c.src.Vhosts()
	qs := make([][]vhost.QueueInfo, 0, len(vhosts))
	for _, v := range vhosts {
		qs = append(qs, heldHere(v.Queues()))
	}
	nv := readNode(c.src.Stats(), qs)
	emitNode(c.id, nv, func(name string, v float64, labels ...string) {
		d, ok := c.descs[name]
		if !ok {
			return // not on /metrics
		}
		m, err := prometheus.NewConstMetric(d, c.kinds[name], v, labels...)
		if err != nil {
			// A programming error (label count): the scrape goes on without this metric.
			c.log.Error().Err(err).Str("metric", name).Msg("metric not built")
			return
		}
		ch <- m
	})
	rt := sumRaft(c.src.QuorumGroups())
	for i, d := range c.raft {
		c.constMetric(ch, d, c.raftKinds[i], rt.sums[i])
	}
	c.constMetric(ch, c.maxLag, prometheus.GaugeValue, rt.maxLag)
	c.constMetric(ch, c.offline, prometheus.GaugeValue, rt.membersOffline)
	buckets, count := sizeBuckets(&nv.st)
	m, err := prometheus.NewConstHistogram(c.size, count, float64(nv.st.MessageSizeSum), buckets, protoAMQP091)
	if err != nil {
		c.log.Error().Err(err).Str("metric", sizeName).Msg("metric not built")
		return
	}
	ch <- m
}

// constMetric sends one label-less sample of d.
func (c *collector) constMetric(ch chan<- prometheus.Metric, d *prometheus.Desc, kind prometheus.ValueType, v float64) {
	m, err := prometheus.NewConstMetric(d, kind, v)
	if err != nil {
		c.log.Error().Err(err).Str("metric", d.String()).Msg("metric not built")
		return
	}
	ch <- m
}

// errorLog passes promhttp's errors to zerolog.
type errorLog struct{ log zerolog.Logger }

func (e errorLog) Println(v ...any) {
	e.log.Error().Str("component", "metrics").Msg(fmt.Sprint(v...))
}
