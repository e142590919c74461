package metrics

import (
	"iter"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/vhost"
)

// objectFamily is a per-object metric: one series per object of type T, valued by value.
// A new per-object counter is one more line in its table below.
type objectFamily[T any] struct {
	name, help string
	kind       prometheus.ValueType
	table      string
	value      func(*T) float64
}

// Label names of the per-object tables. Connection metrics are labelled "channel" too: so
// does rabbitmq_prometheus 3.10 (the label names the Erlang process).
var (
	queueLabels      = []string{"vhost", "queue"}
	channelLabels    = []string{"channel"}
	connectionLabels = []string{"channel"}
)

// queueFamilies are the per-queue metrics. RabbitMQ also has, per queue, the messages and
// bytes in memory, persistent and paged out, unacked bytes, the head message's timestamp, disk
// reads and writes and process figures; Warren's queues do not count those.
func queueFamilies() []objectFamily[vhost.QueueInfo] {
	g := prometheus.GaugeValue
	return []objectFamily[vhost.QueueInfo]{
		{"queue_messages_ready", "Messages ready to be delivered to consumers", g, tableQueueCoarse,
			func(q *vhost.QueueInfo) float64 { return float64(q.Ready) }},
		{"queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", g, tableQueueCoarse,
			func(q *vhost.QueueInfo) float64 { return float64(q.Unacked) }},
		{"queue_messages", "Sum of ready and unacknowledged messages - total queue depth", g, tableQueueCoarse,
			func(q *vhost.QueueInfo) float64 { return float64(q.Ready + q.Unacked) }},
		// queue_consumer_count is /metrics/detailed's cheaper table of queue_consumers alone.
		{"queue_consumers", "Consumers on a queue", g, tableQueueConsumer,
			func(q *vhost.QueueInfo) float64 { return float64(q.Consumers) }},
		{"queue_consumers", "Consumers on a queue", g, tableQueue,
			func(q *vhost.QueueInfo) float64 { return float64(q.Consumers) }},
		{"queue_messages_ready_bytes", "Size in bytes of ready messages", g, tableQueue,
			func(q *vhost.QueueInfo) float64 { return float64(q.ReadyBytes) }},
	}
}

// channelFamilies are the per-channel metrics (channel_metrics). Not served: the
// channel_exchange_metrics and channel_queue_metrics tables, keyed by channel and exchange or
// queue.
func channelFamilies() []objectFamily[server.ChannelInfo] {
	g := prometheus.GaugeValue
	return []objectFamily[server.ChannelInfo]{
		{"channel_consumers", "Consumers on a channel", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(len(c.Consumers)) }},
		{"channel_messages_unacked", "Delivered but not yet acknowledged messages", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(c.Unacked) }},
		{"channel_messages_unconfirmed", "Published but not yet confirmed messages", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(c.Unconfirmed) }},
		{"channel_messages_uncommitted", "Messages received in a transaction but not yet committed", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(c.Uncommitted) }},
		{"channel_acks_uncommitted", "Message acknowledgements in a transaction not yet committed", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(c.AcksUncommitted) }},
		{"consumer_prefetch", "Limit of unacknowledged messages for each consumer", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(c.PrefetchCount) }},
		{"channel_prefetch", "Total limit of unacknowledged messages for all consumers on a channel", g, tableChannel,
			func(c *server.ChannelInfo) float64 { return float64(c.GlobalPrefetchCount) }},
	}
}

// connectionFamilies are the per-connection metrics (connection_coarse_metrics,
// connection_metrics); a new field of server.ConnectionInfo is one line here away.
func connectionFamilies() []objectFamily[server.ConnectionInfo] {
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return []objectFamily[server.ConnectionInfo]{
		{"connection_incoming_bytes_total", "Total number of bytes received on a connection", c, tableConnCoarse,
			func(x *server.ConnectionInfo) float64 { return float64(x.RecvOct) }},
		{"connection_outgoing_bytes_total", "Total number of bytes sent on a connection", c, tableConnCoarse,
			func(x *server.ConnectionInfo) float64 { return float64(x.SendOct) }},
		{"connection_incoming_packets_total", "Total number of packets received on a connection", c, tableConnection,
			func(x *server.ConnectionInfo) float64 { return float64(x.RecvCnt) }},
		{"connection_outgoing_packets_total", "Total number of packets sent on a connection", c, tableConnection,
			func(x *server.ConnectionInfo) float64 { return float64(x.SendCnt) }},
		{"connection_channels", "Channels on a connection", g, tableConnection,
			func(x *server.ConnectionInfo) float64 { return float64(x.Channels) }},
	}
}

// writeObjects writes each family of fams that want takes, with one series per row: a header
// even with no rows, as RabbitMQ does.
func writeObjects[T any](t *textWriter, prefix string, fams []objectFamily[T], want func(table string) bool,
	labels []string, rows iter.Seq2[[]string, *T]) {
	for _, f := range fams {
		if !want(f.table) {
			continue
		}
		name := prefix + f.name
		t.header(name, f.help, typeName(f.kind))
		for values, obj := range rows {
			t.sample(name, labels, values, f.value(obj))
			if t.err != nil {
				return
			}
		}
	}
}

// snapshot is what one per-object or detailed scrape reads from the broker, once.
type snapshot struct {
	vhosts   []*vhost.Vhost
	queues   [][]vhost.QueueInfo // by vhost, in vhosts' order
	channels []server.ChannelInfo
	conns    []server.ConnectionInfo
	raft     []server.QuorumGroupStatus // this node's quorum queue groups
	node     *nodeValues
}

func takeSnapshot(src Source) *snapshot {
	s := &snapshot{vhosts: src.Vhosts()}
	s.queues = make([][]vhost.QueueInfo, len(s.vhosts))
	for i, v := range s.vhosts {
		s.queues[i] = heldHere(v.Queues())
	}
	s.node = readNode(src.Stats(), s.queues)
	s.channels = src.Channels()
	s.conns = src.Connections()
	s.raft = src.QuorumGroups()
	return s
}

// queueRows yields every queue of the vhosts keep takes (nil: all), labelled vhost, queue.
func (s *snapshot) queueRows(keep map[string]bool) iter.Seq2[[]string, *vhost.QueueInfo] {
	return func(yield func([]string, *vhost.QueueInfo) bool) {
		values := make([]string, 2)
		for i, v := range s.vhosts {
			if keep != nil && !keep[v.Name()] {
				continue
			}
			values[0] = v.Name()
			for j := range s.queues[i] {
				q := &s.queues[i][j]
				values[1] = q.Name
				if !yield(values, q) {
					return
				}
			}
		}
	}
}

func (s *snapshot) channelRows() iter.Seq2[[]string, *server.ChannelInfo] {
	return func(yield func([]string, *server.ChannelInfo) bool) {
		values := make([]string, 1)
		for i := range s.channels {
			values[0] = s.channels[i].Name()
			if !yield(values, &s.channels[i]) {
				return
			}
		}
	}
}

func (s *snapshot) connectionRows() iter.Seq2[[]string, *server.ConnectionInfo] {
	return func(yield func([]string, *server.ConnectionInfo) bool) {
		values := make([]string, 1)
		for i := range s.conns {
			values[0] = s.conns[i].Name
			if !yield(values, &s.conns[i]) {
				return
			}
		}
	}
}

// writeNode writes the node-wide samples that keep takes, named prefix + name, and the
// message size histogram when histogram is set.
func writeNode(t *textWriter, id Identity, nv *nodeValues, prefix string, keep func(f *family) bool, histogram bool) {
	fams := make(map[string]*family)
	for _, f := range nodeFamilies() {
		fams[f.name] = &f
	}
	emitNode(id, nv, func(name string, v float64, labels ...string) {
		f := fams[name]
		if f == nil || !keep(f) {
			return
		}
		p := prefix
		if name == "build_info" || name == "identity_info" {
			p = "rabbitmq_" // the identity keeps its name on every endpoint
		}
		t.header(p+name, f.help, typeName(f.kind))
		t.sample(p+name, f.labels, labels, v)
	})
	if histogram {
		writeSizeHistogram(t, prefix+sizeName, &nv.st)
	}
}

// writeSizeHistogram writes the message size histogram: cumulative buckets, sum and count.
func writeSizeHistogram(t *textWriter, name string, st *server.Stats) {
	t.header(name, sizeHelp, "histogram")
	names := []string{"protocol", "le"}
	values := []string{protoAMQP091, ""}
	var count uint64
	for i, b := range server.MessageSizeBounds() {
		count += st.MessageSizes[i]
		// As client_golang writes le on /metrics, so both endpoints name the same series.
		values[1] = strconv.FormatFloat(float64(b), 'g', -1, 64)
		t.sample(name+"_bucket", names, values, float64(count))
	}
	count += st.MessageSizes[len(st.MessageSizes)-1]
	values[1] = "+Inf"
	t.sample(name+"_bucket", names, values, float64(count))
	t.sample(name+"_sum", names[:1], values[:1], float64(st.MessageSizeSum))
	t.sample(name+"_count", names[:1], values[:1], float64(count))
}
