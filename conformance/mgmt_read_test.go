package conformance

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The read side of the management API: what a client declared is listed with RabbitMQ's
// fields; pagination, filters, sort and columns; rates. RabbitMQ lists new objects only after
// its stats emit (up to ~5 s), so every check polls.

// readPoll calls f until it returns "" (done) or the deadline passes, then fails with f's last
// complaint.
func readPoll(t *testing.T, within time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitListedConnection waits for the connection with this connection_name and returns its name.
func waitListedConnection(t *testing.T, a *api, clientName string) string {
	t.Helper()
	var name string
	readPoll(t, 3*timeout, func() string {
		var cs []struct {
			Name             string `json:"name"`
			ClientProperties struct {
				ConnectionName string `json:"connection_name"`
			} `json:"client_properties"`
		}
		a.json("GET", "/api/connections", nil, 200, &cs)
		for _, c := range cs {
			if c.ClientProperties.ConnectionName == clientName {
				name = c.Name
				return ""
			}
		}
		return "connection " + clientName + " is not listed in /api/connections"
	})
	return name
}

func dialWithName(t *testing.T, clientName string) *amqp.Connection {
	t.Helper()
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(clientName)
	return dialConfig(t, brokerURL, amqp.Config{Properties: props})
}

func TestManagementListsChannelsConsumersExchangesBindings(t *testing.T) {
	a := mgmtAPI(t)
	clientName := uniqueName(t, "conn")
	conn := dialWithName(t, clientName)
	ch := channel(t, conn)
	if err := ch.Qos(3, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	x := declareExchange(t, ch, "topic", nil)
	q := declareQueue(t, ch, nil)
	bind(t, ch, q, "a.#", x, nil)
	tag := uniqueName(t, "ctag")
	if _, err := ch.Consume(q, tag, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	connName := waitListedConnection(t, a, clientName)
	chanName := connName + " (1)"

	// The channel, in every listing that has it (RabbitMQ's listing lags the channel's state
	// by up to a stats interval).
	readPoll(t, 3*timeout, func() string {
		var chans []map[string]any
		a.json("GET", "/api/channels", nil, 200, &chans)
		var c map[string]any
		for _, ch := range chans {
			if ch["name"] == chanName {
				c = ch
			}
		}
		details, _ := c["connection_details"].(map[string]any)
		if c == nil || c["number"] != 1.0 || c["user"] != "guest" || c["vhost"] != "/" || c["consumer_count"] != 1.0 ||
			c["prefetch_count"] != 3.0 || c["global_prefetch_count"] != 0.0 || c["confirm"] != true ||
			c["transactional"] != false || c["messages_unacknowledged"] != 0.0 || c["messages_unconfirmed"] != 0.0 ||
			c["messages_uncommitted"] != 0.0 || c["acks_uncommitted"] != 0.0 || c["state"] != "running" ||
			details["name"] != connName || details["peer_host"] == nil || details["peer_port"] == nil {
			return fmt.Sprintf("channel %s in /api/channels: %v", chanName, c)
		}
		return ""
	})
	var one map[string]any
	a.json("GET", "/api/channels/"+url.PathEscape(chanName), nil, 200, &one)
	if one["name"] != chanName {
		t.Errorf("GET /api/channels/{name}: %v", one)
	}
	var ofConn []map[string]any
	a.json("GET", "/api/connections/"+url.PathEscape(connName)+"/channels", nil, 200, &ofConn)
	if len(ofConn) != 1 || ofConn[0]["name"] != chanName {
		t.Errorf("the connection's channels: %v", ofConn)
	}
	var ofVhost []map[string]any
	a.json("GET", "/api/vhosts/%2F/channels", nil, 200, &ofVhost)
	if !hasItem(ofVhost, chanName) {
		t.Errorf("the vhost's channels lack %s", chanName)
	}
	var conns []map[string]any
	a.json("GET", "/api/vhosts/%2F/connections", nil, 200, &conns)
	if !hasItem(conns, connName) {
		t.Errorf("the vhost's connections lack %s", connName)
	}
	var cj map[string]any
	readPoll(t, 3*timeout, func() string {
		a.json("GET", "/api/connections/"+url.PathEscape(connName), nil, 200, &cj)
		if cj["channels"] != 1.0 {
			return "the connection's channel count is not 1: " + fmt.Sprint(cj["channels"])
		}
		return ""
	})
	if cj["state"] != "running" || cj["recv_oct"] == nil || cj["send_oct"] == nil || cj["recv_cnt"] == nil || cj["send_cnt"] == nil {
		t.Errorf("connection: channels %v state %v recv_oct %v send_oct %v", cj["channels"], cj["state"], cj["recv_oct"], cj["send_oct"])
	}

	// The consumer.
	var mine map[string]any
	readPoll(t, 3*timeout, func() string {
		var cs []map[string]any
		a.json("GET", "/api/consumers/%2F", nil, 200, &cs)
		for _, c := range cs {
			if c["consumer_tag"] == tag {
				mine = c
				return ""
			}
		}
		return "consumer " + tag + " is not listed in /api/consumers/%2F"
	})
	cd, _ := mine["channel_details"].(map[string]any)
	if mine == nil || mine["ack_required"] != true || mine["exclusive"] != false || mine["active"] != true ||
		mine["activity_status"] != "up" || fmt.Sprint(mine["queue"]) != fmt.Sprintf("map[name:%s vhost:/]", q) ||
		cd["name"] != chanName || cd["connection_name"] != connName || cd["number"] != 1.0 || cd["user"] != "guest" {
		t.Errorf("consumer %s: %v", tag, mine)
	}

	// The exchange, the default and amq.* ones, and the bindings.
	var xs []map[string]any
	a.json("GET", "/api/exchanges/%2F?columns=name,type", nil, 200, &xs)
	for _, want := range []string{"", "amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic", x} {
		if !hasItem(xs, want) {
			t.Errorf("/api/exchanges/%%2F lacks %q", want)
		}
	}
	var xj map[string]any
	a.json("GET", "/api/exchanges/%2F/"+url.PathEscape(x), nil, 200, &xj)
	if xj["name"] != x || xj["vhost"] != "/" || xj["type"] != "topic" || xj["durable"] != false ||
		xj["auto_delete"] != false || xj["internal"] != false || fmt.Sprint(xj["arguments"]) != "map[]" {
		t.Errorf("exchange: %v", xj)
	}
	var def map[string]any
	a.json("GET", "/api/exchanges/%2F/amq.default", nil, 200, &def)
	if def["name"] != "" || def["type"] != "direct" || def["user_who_performed_action"] != "rmq-internal" {
		t.Errorf("the default exchange: %v", def)
	}
	wantBinding := fmt.Sprintf("map[arguments:map[] destination:%s destination_type:queue properties_key:a.%%23 routing_key:a.# source:%s vhost:/]", q, x)
	var src []map[string]any
	a.json("GET", "/api/exchanges/%2F/"+url.PathEscape(x)+"/bindings/source", nil, 200, &src)
	if len(src) != 1 || fmt.Sprint(src[0]) != wantBinding {
		t.Errorf("bindings/source: %v, want [%s]", src, wantBinding)
	}
	var dst []map[string]any
	a.json("GET", "/api/exchanges/%2F/"+url.PathEscape(x)+"/bindings/destination", nil, 200, &dst)
	if len(dst) != 0 {
		t.Errorf("bindings/destination: %v, want none", dst)
	}
	var qb []map[string]any
	a.json("GET", "/api/queues/%2F/"+url.PathEscape(q)+"/bindings", nil, 200, &qb)
	wantDefault := fmt.Sprintf("map[arguments:map[] destination:%s destination_type:queue properties_key:%s routing_key:%s source: vhost:/]", q, q, q)
	if len(qb) != 2 || fmt.Sprint(qb[0]) != wantDefault || fmt.Sprint(qb[1]) != wantBinding {
		t.Errorf("the queue's bindings: %v, want [%s %s]", qb, wantDefault, wantBinding)
	}
	var all []map[string]any
	a.json("GET", "/api/bindings/%2F", nil, 200, &all)
	n := 0
	for _, b := range all {
		if b["destination"] == q {
			n++
		}
	}
	if n != 2 {
		t.Errorf("/api/bindings/%%2F has %d bindings to %s, want 2", n, q)
	}
	if code, body := a.do("GET", "/api/exchanges/no-such-vhost-"+url.PathEscape(x), nil); code != 404 {
		t.Errorf("exchanges of a missing vhost: %d %s", code, body)
	}
}

func hasItem(items []map[string]any, name string) bool {
	for _, it := range items {
		if it["name"] == name {
			return true
		}
	}
	return false
}

// pageEnvelope is the paged answer's envelope.
type pageEnvelope struct {
	FilteredCount int              `json:"filtered_count"`
	ItemCount     int              `json:"item_count"`
	Items         []map[string]any `json:"items"`
	Page          int              `json:"page"`
	PageCount     int              `json:"page_count"`
	PageSize      int              `json:"page_size"`
	TotalCount    int              `json:"total_count"`
}

func itemNames(items []map[string]any) string {
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprint(it["name"]))
	}
	return strings.Join(out, " ")
}

func TestManagementPaginationSortFilterColumns(t *testing.T) {
	a := mgmtAPI(t)
	_, ch := connChannel(t)
	prefix := uniqueName(t, "pg")
	var qs []string
	for _, s := range []string{"b", "a", "c"} {
		name := prefix + "." + s
		if _, err := ch.QueueDeclare(name, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		deleteQueueLater(t, name)
		qs = append(qs, name)
	}
	if err := ch.Publish("", qs[2], false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	base := "/api/queues/%2F?name=" + url.QueryEscape(prefix)
	var p pageEnvelope
	readPoll(t, 3*timeout, func() string {
		a.json("GET", base+"&page=1&page_size=2&sort=name&columns=name,messages", nil, 200, &p)
		if p.FilteredCount != 3 || len(p.Items) != 2 || len(p.Items[0]) != 2 || len(p.Items[1]) != 2 {
			return fmt.Sprintf("page 1: %+v", p)
		}
		return ""
	})
	if p.ItemCount != 2 || p.Page != 1 || p.PageCount != 2 || p.PageSize != 2 || p.TotalCount < 3 ||
		itemNames(p.Items) != prefix+".a "+prefix+".b" || p.Items[0]["messages"] != 0.0 {
		t.Errorf("page 1: %+v", p)
	}
	a.json("GET", base+"&page=2&page_size=2&sort=name&columns=name", nil, 200, &p)
	if p.ItemCount != 1 || p.PageCount != 2 || itemNames(p.Items) != prefix+".c" {
		t.Errorf("page 2: %+v", p)
	}
	a.json("GET", base+"&page=1&sort=name&sort_reverse=true&columns=name", nil, 200, &p)
	if itemNames(p.Items) != prefix+".c "+prefix+".b "+prefix+".a" || p.PageSize != 100 {
		t.Errorf("reversed: %+v", p)
	}
	// Sorted by message count the queue with a message comes last (once RabbitMQ's stats
	// show it).
	readPoll(t, 3*timeout, func() string {
		a.json("GET", base+"&page=1&sort=messages&columns=name", nil, 200, &p)
		if got := itemNames(p.Items); !strings.HasSuffix(got, prefix+".c") {
			return "sorted by messages: " + got
		}
		return ""
	})
	// A case-insensitive regular expression.
	re := url.QueryEscape(strings.ToUpper(strings.ReplaceAll(prefix, ".", `\.`)) + `\.[ab]$`)
	a.json("GET", "/api/queues/%2F?page=1&use_regex=true&sort=name&columns=name&name="+re, nil, 200, &p)
	if itemNames(p.Items) != prefix+".a "+prefix+".b" || p.FilteredCount != 2 {
		t.Errorf("regex: %+v", p)
	}
	// columns on one object, nested paths.
	var one map[string]any
	a.json("GET", "/api/queues/%2F/"+url.PathEscape(qs[0])+"?columns=name,durable", nil, 200, &one)
	if fmt.Sprint(one) != fmt.Sprintf("map[durable:false name:%s]", qs[0]) {
		t.Errorf("one queue's columns: %v", one)
	}

	for _, c := range []struct{ query, body string }{
		{"page=x", `{"error":"bad_request","reason":"Pagination parameters are invalid"}`},
		{"page=1&page_size=x", `{"error":"bad_request","reason":"Pagination parameters are invalid"}`},
		{"page=0", `{"error":"invalid_pagination_parameters","reason":"Invalid pagination parameters: page number 0, page size undefined"}`},
		{"page=1&page_size=501", `{"error":"invalid_pagination_parameters","reason":"Invalid pagination parameters: page number 1, page size 501"}`},
		{"page=1&page_size=0", `{"error":"invalid_pagination_parameters","reason":"Invalid pagination parameters: page number 1, page size 0"}`},
		{"page=3&page_size=2&name=" + url.QueryEscape(prefix), `{"error":"page_out_of_range","reason":"Page out of range, page: 3 page size: 2, len: 3"}`},
	} {
		code, body := a.do("GET", "/api/queues/%2F?"+c.query, nil)
		if code != 400 || strings.TrimSpace(string(body)) != c.body {
			t.Errorf("?%s: %d %s, want 400 %s", c.query, code, body, c.body)
		}
	}
}

// A steady publisher makes the publish rates non-zero within a few samples (RabbitMQ samples
// every 5 s).
func TestManagementRatesUnderSteadyPublisher(t *testing.T) {
	a := mgmtAPI(t)
	clientName := uniqueName(t, "conn")
	conn := dialWithName(t, clientName)
	ch := channel(t, conn)
	q := declareQueue(t, ch, nil)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("tick")}); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	connName := waitListedConnection(t, a, clientName)
	rate := func(obj map[string]any, path ...string) float64 {
		var v any = obj
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		f, _ := v.(float64)
		return f
	}
	readPoll(t, 6*timeout, func() string {
		var qj, ov, cj map[string]any
		var chans []map[string]any
		a.json("GET", "/api/queues/%2F/"+url.PathEscape(q), nil, 200, &qj)
		a.json("GET", "/api/overview", nil, 200, &ov)
		a.json("GET", "/api/connections/"+url.PathEscape(connName), nil, 200, &cj)
		a.json("GET", "/api/connections/"+url.PathEscape(connName)+"/channels", nil, 200, &chans)
		var chRate float64
		if len(chans) == 1 {
			chRate = rate(chans[0], "message_stats", "publish_details", "rate")
		}
		qRate := rate(qj, "message_stats", "publish_details", "rate")
		lenRate := rate(qj, "messages_details", "rate")
		oRate := rate(ov, "message_stats", "publish_details", "rate")
		recvRate := rate(cj, "recv_oct_details", "rate")
		if qRate > 0 && lenRate > 0 && oRate > 0 && chRate > 0 && recvRate > 0 {
			return ""
		}
		return fmt.Sprintf("rates under a steady publisher: queue publish %v, queue length %v, overview publish %v, channel publish %v, connection recv_oct %v",
			qRate, lenRate, oRate, chRate, recvRate)
	})
}

func TestManagementNodesAndClusterName(t *testing.T) {
	a := mgmtAPI(t)
	var ov map[string]any
	a.json("GET", "/api/overview", nil, 200, &ov)
	node, _ := ov["node"].(string)
	ls, _ := ov["listeners"].([]any)
	var amqpListener bool
	for _, l := range ls {
		if m, _ := l.(map[string]any); m["protocol"] == "amqp" && m["node"] == node && m["port"] != nil {
			amqpListener = true
		}
	}
	if node == "" || !amqpListener || ov["contexts"] == nil {
		t.Errorf("overview: node %v listeners %v contexts %v", ov["node"], ov["listeners"], ov["contexts"])
	}
	// One node, or every node of a cluster (all running: the broker under test is healthy),
	// the overview's among them; each with its own figures.
	var nodes []map[string]any
	a.json("GET", "/api/nodes", nil, 200, &nodes)
	names := strings.Fields(itemNames(nodes))
	if !slices.Contains(names, node) {
		t.Fatalf("nodes: %v, want %s among them", names, node)
	}
	for _, name := range names {
		var n map[string]any
		a.json("GET", "/api/nodes/"+url.PathEscape(name), nil, 200, &n)
		for _, k := range []string{"uptime", "mem_used", "mem_limit", "disk_free", "disk_free_limit", "fd_used", "fd_total", "proc_used", "proc_total", "sockets_used"} {
			if v, ok := n[k].(float64); !ok || v < 0 {
				t.Errorf("node %s: %s = %v, want a number", name, k, n[k])
			}
		}
		if n["name"] != name || n["type"] != "disc" || n["running"] != true || n["mem_alarm"] != false || n["disk_free_alarm"] != false ||
			fmt.Sprint(n["partitions"]) != "[]" || n["rates_mode"] != "basic" || n["os_pid"] == nil || n["exchange_types"] == nil {
			t.Errorf("node %s: name %v type %v running %v alarms %v %v partitions %v rates_mode %v", name, n["name"], n["type"], n["running"], n["mem_alarm"], n["disk_free_alarm"], n["partitions"], n["rates_mode"])
		}
	}
	var cn map[string]any
	a.json("GET", "/api/cluster-name", nil, 200, &cn)
	if s, _ := cn["name"].(string); s == "" {
		t.Errorf("cluster-name: %v", cn)
	}
}
