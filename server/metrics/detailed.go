package metrics

import (
	"net/url"

	"github.com/warrenmq/warren/server/vhost"
)

// detailedQuery is what /metrics/detailed was asked for: tables by name, and the vhosts that
// queue tables are limited to (nil: all).
type detailedQuery struct {
	tables map[string]bool
	vhosts map[string]bool
}

func parseDetailed(q url.Values) detailedQuery {
	d := detailedQuery{tables: make(map[string]bool)}
	for _, f := range q["family"] {
		d.tables[f] = true
	}
	// queue_metrics has queue_consumers too: RabbitMQ drops the smaller table.
	if d.tables[tableQueue] {
		delete(d.tables, tableQueueConsumer)
	}
	if vs, ok := q["vhost"]; ok {
		d.vhosts = make(map[string]bool, len(vs))
		for _, v := range vs {
			d.vhosts[v] = true
		}
	}
	return d
}

// writeDetailed writes the tables d asks for, prefixed rabbitmq_detailed_ (the cluster-wide
// ones rabbitmq_cluster_), and the identity.
func writeDetailed(t *textWriter, id Identity, s *snapshot, d detailedQuery) {
	const prefix = "rabbitmq_detailed_"
	want := func(table string) bool { return d.tables[table] }
	writeNode(t, id, s.node, prefix, func(f *family) bool {
		return f.name == "build_info" || f.name == "identity_info" || (f.table != "" && want(f.table))
	}, false)
	writeObjects(t, prefix, queueFamilies(), want, queueLabels, s.queueRows(d.vhosts))
	writeObjects(t, prefix, channelFamilies(), want, channelLabels, s.channelRows())
	writeObjects(t, prefix, connectionFamilies(), want, connectionLabels, s.connectionRows())
	writeObjects(t, prefix, raftFamilies(), want, queueLabels, s.raftRows())
	writeObjects(t, "", memberFamilies(), want, memberLabels, s.memberRows())
	if want(tableVhostStatus) {
		name := "rabbitmq_cluster_vhost_status"
		t.header(name, "Whether a given vhost is running", "gauge")
		for _, v := range s.vhosts {
			t.sample(name, []string{"vhost"}, []string{v.Name()}, 1) // a vhost Warren lists runs
		}
	}
	if want(tableExchBindings) {
		name := "rabbitmq_cluster_exchange_bindings"
		t.header(name, "Number of bindings for an exchange. This value is cluster-wide.", "gauge")
		for _, v := range s.vhosts {
			counts := make(map[string]int)
			for _, b := range v.Bindings() {
				counts[b.Source]++
			}
			eachExchange(v, func(labels []string, x *vhost.ExchangeInfo) {
				t.sample(name, exchangeLabels, labels, float64(counts[x.Name]))
			})
		}
	}
	if want(tableExchNames) {
		name := "rabbitmq_cluster_exchange_name"
		t.header(name, "Enumerates exchanges without any additional info. This value is cluster-wide. A cheaper alternative to `exchange_bindings`", "gauge")
		for _, v := range s.vhosts {
			eachExchange(v, func(labels []string, _ *vhost.ExchangeInfo) { t.sample(name, exchangeLabels, labels, 1) })
		}
	}
}

var exchangeLabels = []string{"vhost", "exchange", "type"}

// eachExchange calls fn for each exchange of v but the default and internal ones (as
// RabbitMQ's exchange tables), labelled vhost, exchange, type.
func eachExchange(v *vhost.Vhost, fn func(labels []string, x *vhost.ExchangeInfo)) {
	labels := []string{v.Name(), "", ""}
	xs := v.Exchanges()
	for i := range xs {
		x := &xs[i]
		if x.Name == "" || x.Internal {
			continue
		}
		labels[1], labels[2] = x.Name, x.Kind
		fn(labels, x)
	}
}
