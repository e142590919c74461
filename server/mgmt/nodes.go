package mgmt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The nodes (rabbit_mgmt_wm_nodes, _node), the cluster name and UI extensions. A node running
// alone lists itself; a cluster node lists every member of the cluster, as RabbitMQ does:
// itself as it sees itself, the others with the object each makes of itself, asked over the
// cluster transport (peerNodeJSON), and one that does not answer within peerNodeWait as not
// running.

// procTotal is RabbitMQ's default Erlang process limit, reported as proc_total; Warren's
// "processes" are goroutines, which have no limit.
const procTotal = 1048576

func (a *api) nodes(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	if !u.isMonitor() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "Not monitor user")
		return
	}
	a.replyList(w, r, a.nodesJSON(r.Context()), false, "name")
}

// node serves /api/nodes/{name}: this node or another member of its cluster; any other
// name is 404.
func (a *api) node(w http.ResponseWriter, r *http.Request, u user, args []string) {
	if !u.isMonitor() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "Not monitor user")
		return
	}
	if args[0] == a.id.Node {
		replyObject(w, r, a.nodeJSON())
		return
	}
	if !slices.Contains(a.memberNames(), args[0]) {
		notFound(w)
		return
	}
	replyObject(w, r, a.peerNodeJSON(r.Context(), args[0]))
}

// peerNodeWait bounds how long /api/nodes waits for another node's report.
const peerNodeWait = 2 * time.Second

// memberNames are the cluster's members (nil for a node running alone).
func (a *api) memberNames() []string {
	if a.id.Membership == nil {
		return nil
	}
	st, _ := a.id.Membership()
	names := make([]string, 0, len(st.Members))
	for _, m := range st.Members {
		names = append(names, m.Name)
	}
	return names
}

// nodesJSON is this node and every other member of its cluster, asked in parallel.
func (a *api) nodesJSON(ctx context.Context) []map[string]any {
	out := []map[string]any{a.nodeJSON()}
	var others []string
	for _, name := range a.memberNames() {
		if name != a.id.Node {
			others = append(others, name)
		}
	}
	peers := make([]map[string]any, len(others))
	var wg sync.WaitGroup
	for i, name := range others {
		wg.Go(func() { peers[i] = a.peerNodeJSON(ctx, name) })
	}
	wg.Wait()
	return append(out, peers...)
}

// peerNodeJSON is the object another member of the cluster makes of itself, or, when it
// cannot be reached or does not answer within peerNodeWait, RabbitMQ's object for a node
// that is not running.
func (a *api) peerNodeJSON(ctx context.Context, name string) map[string]any {
	ctx, cancel := context.WithTimeout(ctx, peerNodeWait)
	defer cancel()
	var m map[string]any
	raw, err := a.src.NodeReport(ctx, name)
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	if err != nil || m == nil {
		return map[string]any{"name": name, "type": "disc", "running": false}
	}
	m["name"], m["running"] = name, true
	if m["type"] == nil {
		m["type"] = "disc"
	}
	return m
}

func (a *api) nodeJSON() map[string]any {
	st := a.src.Stats()
	fdUsed, fdTotal := openFiles()
	diskFree := any(nil)
	if st.DiskFreeKnown {
		diskFree = st.DiskFree
	}
	diskLimit := st.DiskFreeLimit
	if diskLimit < 0 {
		diskLimit = 0
	}
	memLimit := st.MemoryLimit
	conns := st.Connections
	m := map[string]any{
		"name": a.id.Node, "type": "disc", "running": true,
		"uptime":   time.Since(a.started).Milliseconds(),
		"os_pid":   strconv.Itoa(os.Getpid()),
		"mem_used": st.MemoryUsed, "mem_limit": memLimit, "mem_alarm": st.MemoryAlarm,
		"mem_calculation_strategy": "rss",
		"disk_free":                diskFree, "disk_free_limit": diskLimit, "disk_free_alarm": st.DiskAlarm,
		"fd_used": fdUsed, "fd_total": fdTotal,
		"sockets_used": conns, "sockets_total": fdTotal * 9 / 10,
		"proc_used": runtime.NumGoroutine(), "proc_total": procTotal,
		"run_queue": 0, "processors": runtime.NumCPU(),
		"partitions": []any{}, "cluster_links": []any{}, "net_ticktime": 60,
		"rates_mode": "basic", "exchange_types": exchangeTypes(),
		"applications": []map[string]any{{"name": "warren", "description": a.id.Product.Name, "version": a.id.Product.Version},
			{"name": "rabbitmq_management", "description": "RabbitMQ Management Console", "version": RabbitMQVersion}},
		"contexts":        a.contextsJSON(),
		"listeners":       a.listenersJSON(),
		"enabled_plugins": []string{"rabbitmq_management", "rabbitmq_prometheus"},
		"auth_mechanisms": []map[string]any{
			{"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
			{"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true}},
		"channel_created": st.ChannelsOpened, "channel_closed": st.ChannelsClosed,
		"connection_created": st.ConnectionsOpened, "connection_closed": st.ConnectionsClosed,
		"queue_declared": st.QueuesDeclared, "queue_created": st.QueuesCreated, "queue_deleted": st.QueuesDeleted,
	}
	for _, k := range []string{"mem_used", "fd_used", "sockets_used", "proc_used", "disk_free",
		"channel_created", "channel_closed", "connection_created", "connection_closed",
		"queue_declared", "queue_created", "queue_deleted"} {
		m[k+"_details"] = rate{}
	}
	a.rates.fill(nodeKey, m)
	return m
}

const nodeKey = "node"

// openFiles is the process's open file descriptors and their limit (Linux's /proc; 0 and 0
// elsewhere).
func openFiles() (used, total int) {
	if es, err := os.ReadDir("/proc/self/fd"); err == nil {
		used = len(es)
	}
	f, err := os.Open("/proc/self/limits")
	if err != nil {
		return used, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				total, _ = strconv.Atoi(fs[0])
			}
		}
	}
	return used, total
}

// listenersJSON are the AMQP listeners and the management API's, as /api/overview and
// /api/nodes list them (sorted by protocol, then port).
func (a *api) listenersJSON() []map[string]any {
	out := []map[string]any{}
	for _, l := range a.src.Listeners() {
		out = append(out, map[string]any{"node": a.id.Node, "protocol": l.Protocol, "ip_address": l.Interface,
			"port": l.Port, "socket_opts": map[string]any{}})
	}
	if host, port, ok := splitHostPort(a.id.Listen); ok {
		out = append(out, map[string]any{"node": a.id.Node, "protocol": a.httpProtocol(), "ip_address": host,
			"port": port, "socket_opts": map[string]any{"port": port}})
	}
	return out
}

// httpProtocol is the management listener's protocol as RabbitMQ names it.
func (a *api) httpProtocol() string {
	if a.id.TLS {
		return "https"
	}
	return "http"
}

// contextsJSON is the management API's HTTP context.
func (a *api) contextsJSON() []map[string]any {
	out := []map[string]any{}
	if host, port, ok := splitHostPort(a.id.Listen); ok {
		out = append(out, map[string]any{"node": a.id.Node, "description": "RabbitMQ Management", "path": "/",
			"ip": host, "port": strconv.Itoa(port), "ssl_opts": []any{}})
	}
	return out
}

func splitHostPort(addr string) (string, int, bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, false
	}
	if host == "" {
		host = "::"
	}
	return host, port, true
}

// cluster is the cluster name now (PUT /api/cluster-name changes it).
func (a *api) cluster() string {
	if s := a.clusterNameSet.Load(); s != nil {
		return *s
	}
	return a.id.Cluster
}

// clusterName serves GET and PUT /api/cluster-name. The name changes for the running broker
// only: a restart goes back to the configured one.
func (a *api) clusterName(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	if r.Method == http.MethodGet {
		replyObject(w, r, map[string]any{"name": a.cluster()})
		return
	}
	if !u.isAdmin() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "Not administrator user")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "not_json")
		return
	}
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil || v == nil {
		a.log.Info().Str("user", u.name).Msg("PUT /api/cluster-name: body is not a JSON object")
		writeError(w, http.StatusBadRequest, "bad_request", "not_json")
		return
	}
	name, ok := v["name"]
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", "[{key_missing,name}]")
		return
	}
	s, ok := name.(string)
	if !ok || s == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "cluster name must be a non-empty string")
		return
	}
	a.clusterNameSet.Store(&s)
	a.log.Info().Str("user", u.name).Str("cluster_name", s).Msg("cluster name changed via the management API")
	w.WriteHeader(http.StatusNoContent)
}

// extensions serves /api/extensions: Warren's API has no UI plugins.
func (a *api) extensions(w http.ResponseWriter, r *http.Request, _ user, _ []string) {
	writeJSON(w, []any{})
}
