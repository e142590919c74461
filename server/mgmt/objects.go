package mgmt

import (
	"net/http"
	"sync"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// readSource is what the read side of the API (listings, rates) needs from the broker beyond
// Source's own methods.
type readSource interface {
	// Channels lists the open channels with their consumers and counters.
	Channels() []server.ChannelInfo
}

// readEndpoints are the endpoints that list and show objects, and close connections.
func (a *api) readEndpoints() []endpoint {
	return []endpoint{
		{http.MethodGet, "overview", a.overview},
		{http.MethodGet, "whoami", a.whoami},
		{http.MethodGet, "vhosts", a.vhosts},
		{http.MethodGet, "queues", a.queues},
		{http.MethodGet, "queues/{}", a.queues},
		{http.MethodGet, "queues/{}/{}", a.queues},
		{http.MethodGet, "connections", a.connections},
		{http.MethodGet, "connections/{}", a.connection},
		{http.MethodDelete, "connections/{}", a.connection},
		{http.MethodGet, "connections/{}/channels", a.connectionChannels},
		{http.MethodGet, "vhosts/{}/connections", a.vhostConnections},
		{http.MethodGet, "vhosts/{}/channels", a.vhostChannels},
		{http.MethodGet, "channels", a.channels},
		{http.MethodGet, "channels/{}", a.channel},
		{http.MethodGet, "consumers", a.consumers},
		{http.MethodGet, "consumers/{}", a.consumers},
		{http.MethodGet, "exchanges", a.exchanges},
		{http.MethodGet, "exchanges/{}", a.exchanges},
		{http.MethodGet, "exchanges/{}/{}", a.exchanges},
		{http.MethodGet, "exchanges/{}/{}/bindings/source", a.exchangeBindings},
		{http.MethodGet, "exchanges/{}/{}/bindings/destination", a.exchangeBindings},
		{http.MethodGet, "queues/{}/{}/bindings", a.queueBindings},
		{http.MethodGet, "bindings", a.bindings},
		{http.MethodGet, "bindings/{}", a.bindings},
		{http.MethodGet, "nodes", a.nodes},
		{http.MethodGet, "nodes/{}", a.node},
		{http.MethodGet, "cluster-name", a.clusterName},
		{http.MethodPut, "cluster-name", a.clusterName},
		{http.MethodGet, "extensions", a.extensions},
	}
}

// rate is a *_details object; rates.go fills it from the last two samples.
type rate struct {
	Rate float64 `json:"rate"`
}

// counters puts each counter and its *_details object in m.
func counters(m map[string]any, kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		m[k] = kv[i+1]
		m[k+"_details"] = rate{}
	}
}

// visibleVhosts are the vhosts whose objects u may list: every one for an administrator
// (all for a monitor when monitorSeesAll), else those u has permissions in.
func (a *api) visibleVhosts(u user, monitorSeesAll bool) []*vhost.Vhost {
	all := a.src.Vhosts()
	if u.isAdmin() || (monitorSeesAll && u.isMonitor()) {
		return all
	}
	out := all[:0:0]
	for _, v := range all {
		if a.src.HasVhostAccess(u.name, v.Name()) {
			out = append(out, v)
		}
	}
	return out
}

func (a *api) overview(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	body := a.overviewJSON(u, queueLists{})
	a.rates.fill("overview", body)
	if u.isMonitor() {
		body["listeners"] = a.listenersJSON()
		body["contexts"] = a.contextsJSON()
	}
	replyObject(w, r, body)
}

// queueLists caches each vhost's queue listing for one answer or sample, which reads it more
// than once.
type queueLists map[*vhost.Vhost][]vhost.QueueInfo

func (l queueLists) of(v *vhost.Vhost) []vhost.QueueInfo {
	qs, ok := l[v]
	if !ok {
		qs = v.Queues()
		l[v] = qs
	}
	return qs
}

// overviewJSON is /api/overview as u sees it, rates 0 (overview fills them).
func (a *api) overviewJSON(u user, ql queueLists) map[string]any {
	st := a.src.Stats()
	var queues, exchanges, ready, unacked, consumers int
	for _, v := range a.visibleVhosts(u, true) {
		qs := ql.of(v)
		a.warmHolderStats(v.Name(), qs)
		for _, q := range qs {
			queues++
			r, u, c := a.queueCounts(v.Name(), q)
			ready, unacked, consumers = ready+r, unacked+u, consumers+c
		}
		exchanges += len(v.Exchanges())
	}
	msg := map[string]any{}
	get, getNoAck := st.DeliveredGetManualAck, st.DeliveredGetAutoAck
	deliver, deliverNoAck := st.DeliveredConsumeManualAck, st.DeliveredConsumeAutoAck
	counters(msg, "publish", st.MessagesReceived, "confirm", st.MessagesConfirmed,
		"return_unroutable", st.MessagesUnroutableReturned, "drop_unroutable", st.MessagesUnroutableDropped,
		"get", get, "get_no_ack", getNoAck, "deliver", deliver, "deliver_no_ack", deliverNoAck,
		"redeliver", st.MessagesRedelivered, "ack", st.MessagesAcknowledged,
		"deliver_get", get+getNoAck+deliver+deliverNoAck, "get_empty", st.GetEmpty)
	churn := map[string]any{}
	counters(churn, "connection_created", st.ConnectionsOpened, "connection_closed", st.ConnectionsClosed,
		"channel_created", st.ChannelsOpened, "channel_closed", st.ChannelsClosed,
		"queue_declared", st.QueuesDeclared, "queue_created", st.QueuesCreated, "queue_deleted", st.QueuesDeleted)
	totals := map[string]any{}
	counters(totals, "messages", ready+unacked, "messages_ready", ready, "messages_unacknowledged", unacked)
	objects := map[string]any{"queues": queues, "exchanges": exchanges}
	body := map[string]any{
		"management_version":        RabbitMQVersion,
		"rates_mode":                "basic",
		"sample_retention_policies": map[string]any{"global": []int{600, 3600, 28800, 86400}, "basic": []int{600, 3600}, "detailed": []int{600}},
		"exchange_types":            exchangeTypes(),
		"product_name":              a.id.Product.Name,
		"product_version":           a.id.Product.Version,
		"rabbitmq_version":          RabbitMQVersion,
		"cluster_name":              a.cluster(),
		"disable_stats":             false,
		"enable_queue_totals":       false,
		"message_stats":             msg,
		"churn_rates":               churn,
		"queue_totals":              totals,
		"object_totals":             objects,
		"statistics_db_event_queue": 0,
	}
	conns := a.visibleConnections(u)
	objects["connections"] = len(conns)
	if u.isMonitor() {
		objects["consumers"] = consumers
		objects["channels"] = st.Channels
		body["node"] = a.id.Node
	} else {
		channels := 0
		for _, c := range conns {
			channels += c.Channels
		}
		objects["channels"] = channels
	}
	return body
}

// exchangeTypes are the exchange types Warren implements, sorted by name.
func exchangeTypes() []map[string]any {
	return []map[string]any{
		{"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
		{"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
		{"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
		{"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
		{"name": "x-consistent-hash", "description": "Consistent Hashing Exchange", "enabled": true},
		{"name": "x-delayed-message", "description": "Delayed Message Exchange.", "enabled": true},
		{"name": "x-local-random", "description": "Picks one random local binding (queue) to route via (to).", "enabled": true},
		{"name": "x-random", "description": "Randomly picks a binding (queue) to route via (to).", "enabled": true},
	}
}

func (a *api) whoami(w http.ResponseWriter, _ *http.Request, u user, _ []string) {
	tags := u.tags
	if tags == nil {
		tags = []string{}
	}
	writeJSON(w, map[string]any{"name": u.name, "tags": tags})
}

func (a *api) vhosts(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	vs := a.visibleVhosts(u, true)
	out := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		m := a.vhostJSON(v, queueLists{})
		a.rates.fill(vhostKey(v.Name()), m)
		out = append(out, m)
	}
	a.replyList(w, r, out, true, "name")
}

func vhostKey(name string) string { return "vhost\x00" + name }

func (a *api) vhostJSON(v *vhost.Vhost, ql queueLists) map[string]any {
	var ready, unacked int
	for _, q := range ql.of(v) {
		ready += q.Ready
		unacked += q.Unacked
	}
	info, ok := a.src.VhostInfo(v.Name())
	if !ok {
		info = server.VhostInfo{Name: v.Name()}
	}
	m := vhostJSON(info, a.id.Node)
	counters(m, "messages", ready+unacked, "messages_ready", ready, "messages_unacknowledged", unacked)
	return m
}

// vhostArg finds the vhost a path names for u (rabbit_mgmt_util is_authorized_vhost): 404 when
// there is none, 401 when u has no permissions in it. It has answered when ok is false.
func (a *api) vhostArg(w http.ResponseWriter, u user, name string) (*vhost.Vhost, bool) {
	v := a.findVhost(name)
	if v == nil {
		notFound(w)
		return nil, false
	}
	if !u.isAdmin() && !a.src.HasVhostAccess(u.name, v.Name()) {
		writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access virtual host")
		return nil, false
	}
	return v, true
}

// vhostsArg is the vhosts a listing covers: all u may see without an argument, else the one
// named (vhostArg).
func (a *api) vhostsArg(w http.ResponseWriter, u user, args []string) ([]*vhost.Vhost, bool) {
	if len(args) == 0 {
		return a.visibleVhosts(u, false), true
	}
	v, ok := a.vhostArg(w, u, args[0])
	if !ok {
		return nil, false
	}
	return []*vhost.Vhost{v}, true
}

// queues serves /api/queues, /api/queues/{vhost} and /api/queues/{vhost}/{name}.
func (a *api) queues(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vs, ok := a.vhostsArg(w, u, args)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, v := range vs {
		qs := v.Queues()
		if len(args) < 2 {
			a.warmHolderStats(v.Name(), qs)
		}
		for _, q := range qs {
			if len(args) == 2 && q.Name != args[1] {
				continue
			}
			m := a.queueJSON(v.Name(), q)
			a.rates.fill(queueKey(v.Name(), q.Name), m)
			out = append(out, m)
		}
	}
	if len(args) == 2 {
		if len(out) == 0 {
			notFound(w)
			return
		}
		replyObject(w, r, out[0])
		return
	}
	a.replyList(w, r, out, true, "vhost", "name")
}

func queueKey(vh, name string) string { return "queue\x00" + vh + "\x00" + name }

func (a *api) findVhost(name string) *vhost.Vhost {
	for _, v := range a.src.Vhosts() {
		if v.Name() == name {
			return v
		}
	}
	return nil
}

func (a *api) queueJSON(vh string, q vhost.QueueInfo) map[string]any {
	var policy any
	if q.Policy != "" {
		policy = q.Policy
	}
	m := map[string]any{
		"name": q.Name, "vhost": vh, "durable": q.Durable, "auto_delete": q.AutoDelete,
		"exclusive": q.Exclusive(), "arguments": tableJSON(q.Arguments), "policy": policy,
		"operator_policy": nil, "type": q.Type, "state": "running", "node": a.id.Node,
		"consumers": q.Consumers, "exclusive_consumer_tag": nil, "single_active_consumer_tag": nil,
		"recoverable_slaves": nil, "message_bytes_ready": q.ReadyBytes,
	}
	queueCounters(m, q)
	if q.Holder != "" && q.Holder != vhost.PendingHolder {
		m["node"] = q.Holder // another node of the cluster holds it: its counts are there
		ready, unacked, consumers := a.queueCounts(vh, q)
		counters(m, "messages", ready+unacked, "messages_ready", ready, "messages_unacknowledged", unacked)
		m["consumers"] = consumers
	}
	if q.Type == "quorum" {
		if st, ok := a.src.QuorumQueueStatus(vh, q.Name); ok {
			// RabbitMQ's fields for a quorum queue, and Warren's view of its Raft group.
			m["leader"], m["node"], m["members"], m["online"] = st.Leader, st.Leader, st.Members, emptyIfNil(st.Online)
			if st.Leader == "" {
				// No leader that this node knows of (no majority of the members reachable):
				// RabbitMQ's state of a quorum queue whose leader is gone. Publishes are nacked.
				m["state"] = "down"
			}
			if st.Group != nil {
				m["raft"] = st.Group
			}
		}
	}
	if q.Deduplication {
		m["deduplication"] = dedupJSON(q.Deduplicated, q.DedupIDs)
	}
	return m
}

// dedupJSON is Warren's own field for a queue or exchange with x-message-deduplication.
func dedupJSON(dropped, ids uint64) map[string]any {
	return map[string]any{"duplicates_dropped": dropped, "cached_ids": ids}
}

// queueCounts are q's ready and unacknowledged messages and its consumers: this node's, or
// for a queue another node holds, the holder's (server.HolderStats; this node's zeros when it
// cannot answer).
func (a *api) queueCounts(vh string, q vhost.QueueInfo) (ready, unacked, consumers int) {
	if q.Holder != "" && q.Holder != vhost.PendingHolder {
		if st, ok := a.src.HolderStats(vh, q.Name); ok {
			return int(st.Messages), int(st.Unacked), int(st.Consumers)
		}
	}
	return q.Ready, q.Unacked, q.Consumers
}

// holderAsks bounds the holders asked at once for their counts by one listing.
const holderAsks = 16

// warmHolderStats asks the holders of the queues among qs that another node holds for their
// counts, holderAsks at a time, so that a listing of many such queues waits for the slowest
// answers rather than for all of them in turn (answers are kept a few seconds:
// server.HolderStats).
func (a *api) warmHolderStats(vh string, qs []vhost.QueueInfo) {
	sem := make(chan struct{}, holderAsks)
	var wg sync.WaitGroup
	for _, q := range qs {
		if q.Holder == "" || q.Holder == vhost.PendingHolder {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(name string) {
			defer func() { <-sem; wg.Done() }()
			a.src.HolderStats(vh, name)
		}(q.Name)
	}
	wg.Wait()
}

// queueCounters puts q's lengths and message_stats, the fields with rates, in m.
func queueCounters(m map[string]any, q vhost.QueueInfo) {
	counters(m, "messages", q.Ready+q.Unacked, "messages_ready", q.Ready, "messages_unacknowledged", q.Unacked)
	c := q.Counts
	if c != (queue.CounterValues{}) {
		m["message_stats"] = messageStats(
			"ack", c.Ack, "deliver", c.Deliver, "deliver_get", c.Deliver+c.DeliverNoAck+c.Get+c.GetNoAck,
			"deliver_no_ack", c.DeliverNoAck, "get", c.Get, "get_empty", c.GetEmpty, "get_no_ack", c.GetNoAck,
			"publish", c.Publish, "redeliver", c.Redeliver)
	}
}

// messageStats is a message_stats object of counters and their *_details.
func messageStats(kv ...any) map[string]any {
	m := map[string]any{}
	counters(m, kv...)
	return m
}

// visibleConnections are the connections u may see: all for a monitor, else u's own.
func (a *api) visibleConnections(u user) []server.ConnectionInfo {
	all := a.src.Connections()
	if u.isMonitor() {
		return all
	}
	out := all[:0:0]
	for _, c := range all {
		if c.User == u.name {
			out = append(out, c)
		}
	}
	return out
}

func (a *api) connections(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	a.replyConnections(w, r, a.visibleConnections(u), true)
}

// replyConnections answers a list of connections; only /api/connections is paginated, as in
// RabbitMQ.
func (a *api) replyConnections(w http.ResponseWriter, r *http.Request, cs []server.ConnectionInfo, paginate bool) {
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		m := a.connectionJSON(c)
		a.rates.fill(connectionKey(c.Name), m)
		out = append(out, m)
	}
	a.replyList(w, r, out, paginate, "vhost", "name")
}

func connectionKey(name string) string { return "connection\x00" + name }

// vhostConnections serves /api/vhosts/{vhost}/connections.
func (a *api) vhostConnections(w http.ResponseWriter, r *http.Request, u user, args []string) {
	v, ok := a.vhostArg(w, u, args[0])
	if !ok {
		return
	}
	var out []server.ConnectionInfo
	for _, c := range a.visibleConnections(u) {
		if c.Vhost == v.Name() {
			out = append(out, c)
		}
	}
	a.replyConnections(w, r, out, false)
}

// findConnection is the open connection called name, or nil.
func (a *api) findConnection(name string) *server.ConnectionInfo {
	for _, c := range a.src.Connections() {
		if c.Name == name {
			return &c
		}
	}
	return nil
}

// connection serves GET and DELETE /api/connections/{name}.
func (a *api) connection(w http.ResponseWriter, r *http.Request, u user, args []string) {
	found := a.findConnection(args[0])
	if found == nil {
		notFound(w)
		return
	}
	own := found.User == u.name
	if r.Method == http.MethodDelete {
		if !own && !u.isAdmin() {
			writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access object")
			return
		}
		reason := r.Header.Get("X-Reason")
		if reason == "" {
			reason = "Closed via management plugin"
		}
		if !a.src.CloseConnection(found.Name, reason) {
			notFound(w)
			return
		}
		a.log.Info().Str("user", u.name).Str("connection", found.Name).Str("reason", reason).Msg("connection closed via the management API")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !own && !u.isMonitor() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access object")
		return
	}
	m := a.connectionJSON(*found)
	a.rates.fill(connectionKey(found.Name), m)
	replyObject(w, r, m)
}

func (a *api) connectionJSON(c server.ConnectionInfo) map[string]any {
	m := map[string]any{
		"name": c.Name, "node": a.id.Node, "type": "network", "user": c.User, "vhost": c.Vhost,
		"user_who_performed_action": c.User, "host": c.Host, "port": c.Port,
		"peer_host": c.PeerHost, "peer_port": c.PeerPort, "protocol": "AMQP 0-9-1",
		"auth_mechanism": c.AuthMechanism, "ssl": c.TLS, "ssl_protocol": nil, "ssl_key_exchange": nil,
		"ssl_cipher": nil, "ssl_hash": nil, "peer_cert_subject": nil, "peer_cert_issuer": nil,
		"peer_cert_validity": nil, "timeout": int(c.Heartbeat.Seconds()), "frame_max": c.FrameMax,
		"channel_max": c.ChannelMax, "client_properties": tableJSON(c.ClientProperties),
		"connected_at": c.ConnectedAt.UnixMilli(), "state": c.State, "channels": c.Channels,
		"recv_cnt": c.RecvCnt, "send_cnt": c.SendCnt, "send_pend": 0,
	}
	counters(m, "recv_oct", c.RecvOct, "send_oct", c.SendOct)
	if name, ok, _ := c.ClientProperties.Get("connection_name"); ok {
		if s, ok := jsonValue(name).(string); ok {
			m["user_provided_name"] = s
		}
	}
	return m
}

// tableJSON is an AMQP table as a JSON object ({} when empty or unreadable).
func tableJSON(t amqpwire.Table) map[string]any {
	m, err := t.Map()
	if err != nil || m == nil {
		return map[string]any{}
	}
	for k, v := range m {
		m[k] = jsonValue(v)
	}
	return m
}

// jsonValue turns an AMQP field value into what encoding/json writes as RabbitMQ does:
// tables as objects, arrays as arrays, byte arrays and long strings as strings.
func jsonValue(v any) any {
	switch x := v.(type) {
	case amqpwire.Table:
		return tableJSON(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case []byte:
		return string(x)
	default:
		return v
	}
}

// emptyIfNil makes a nil list an empty JSON array.
func emptyIfNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
