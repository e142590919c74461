package mgmt

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/server"
)

// healthSource is what the health checks and the aliveness test read from the broker.
type healthSource interface {
	ActiveAlarms() []string
	Listeners() []server.ListenerInfo
	AlivenessTest(user, vhost string) (bool, error)
}

// healthEndpoints are RabbitMQ 3.10's health checks (/api/health/checks/...) and the
// aliveness test. A check answers 200 {"status":"ok"} or 503 {"status":"failed","reason":...}.
func (a *api) healthEndpoints() []endpoint {
	ok := func(w http.ResponseWriter, _ *http.Request, _ user, _ []string) {
		writeJSON(w, map[string]string{"status": "ok"})
	}
	singleNode := func(w http.ResponseWriter, _ *http.Request, _ user, _ []string) {
		writeJSON(w, map[string]string{"status": "ok", "reason": "single node cluster"})
	}
	return []endpoint{
		{http.MethodGet, "health/checks/alarms", a.alarmsCheck("There are alarms in effect in the cluster")},
		{http.MethodGet, "health/checks/local-alarms", a.alarmsCheck("There are alarms in effect on the node")},
		{http.MethodGet, "health/checks/certificate-expiration/{}/{}", a.certificateCheck},
		{http.MethodGet, "health/checks/port-listener/{}", a.portCheck},
		{http.MethodGet, "health/checks/protocol-listener/{}", a.protocolCheck},
		// Warren's vhosts cannot be down: they have no process of their own to stop.
		{http.MethodGet, "health/checks/virtual-hosts", ok},
		{http.MethodGet, "health/checks/node-is-mirror-sync-critical", singleNode},
		{http.MethodGet, "health/checks/node-is-quorum-critical", singleNode},
		{http.MethodGet, "aliveness-test/{}", a.aliveness},
	}
}

// writeFailed answers a failed check: 503 with body.
func writeFailed(w http.ResponseWriter, body map[string]any) {
	body["status"] = "failed"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(body)
}

// alarmsCheck fails while a memory or disk alarm is in effect (the node is the cluster).
func (a *api) alarmsCheck(reason string) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ user, _ []string) {
		active := a.src.ActiveAlarms()
		if len(active) == 0 {
			writeJSON(w, map[string]string{"status": "ok"})
			return
		}
		alarms := make([]map[string]string, 0, len(active))
		for _, r := range active {
			alarms = append(alarms, map[string]string{"resource": r, "node": a.id.Node})
		}
		writeFailed(w, map[string]any{"reason": reason, "alarms": alarms})
	}
}

// listener is one listener a check can name: the AMQP ones, and this API's own.
type listener struct {
	protocol string
	port     int
}

func (a *api) listeners(r *http.Request) []listener {
	var out []listener
	for _, l := range a.src.Listeners() {
		out = append(out, listener{l.Protocol, l.Port})
	}
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, isTCP := addr.(*net.TCPAddr); isTCP {
			proto := "http"
			if r.TLS != nil {
				proto = "https"
			}
			out = append(out, listener{proto, ta.Port})
		}
	}
	return out
}

// portCheck fails when nothing listens on the port.
func (a *api) portCheck(w http.ResponseWriter, r *http.Request, u user, args []string) {
	port, err := strconv.Atoi(args[0])
	if err != nil {
		a.writeFailure(w, r, u, bad("Invalid port"), direct)
		return
	}
	var ports []int
	for _, l := range a.listeners(r) {
		if l.port == port {
			writeJSON(w, map[string]any{"status": "ok", "port": port})
			return
		}
		ports = append(ports, l.port)
	}
	slices.Sort(ports)
	writeFailed(w, map[string]any{"reason": "No active listener", "missing": port, "ports": slices.Compact(ports)})
}

// protocolNames are rabbit_mgmt_wm_health_check_protocol_listener's aliases.
var protocolNames = map[string]string{
	"amqp091": "amqp", "amqp0.9.1": "amqp", "amqp0-9-1": "amqp", "amqp0_9_1": "amqp",
	"amqp10": "amqp", "amqp1.0": "amqp", "amqp1-0": "amqp", "amqp1_0": "amqp",
	"amqps": "amqp/ssl", "management": "http", "http_api": "http", "https_api": "https",
}

// protocolCheck fails when no listener serves the protocol.
func (a *api) protocolCheck(w http.ResponseWriter, r *http.Request, _ user, args []string) {
	want := strings.ToLower(args[0])
	if n, ok := protocolNames[want]; ok {
		want = n
	}
	var protocols []string
	for _, l := range a.listeners(r) {
		if l.protocol == want {
			writeJSON(w, map[string]any{"status": "ok", "protocol": want})
			return
		}
		protocols = append(protocols, l.protocol)
	}
	slices.Sort(protocols)
	writeFailed(w, map[string]any{"reason": "No active listener", "missing": want, "protocols": slices.Compact(protocols)})
}

// certificateCheck fails when a TLS listener's certificate expires within the period.
func (a *api) certificateCheck(w http.ResponseWriter, r *http.Request, u user, args []string) {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		a.writeFailure(w, r, u, bad("Invalid expiration value."), direct)
		return
	}
	now := time.Now()
	var until time.Time
	switch args[1] {
	case "days":
		until = now.AddDate(0, 0, n)
	case "weeks":
		until = now.AddDate(0, 0, 7*n)
	case "months":
		until = now.AddDate(0, n, 0)
	case "years":
		until = now.AddDate(n, 0, 0)
	default:
		a.writeFailure(w, r, u, bad("Time unit not recognised. Supported units: days, weeks, months, years."), direct)
		return
	}
	var expired []map[string]any
	for _, l := range a.src.Listeners() {
		for _, c := range l.Certificates {
			if c.NotAfter.Before(until) {
				expired = append(expired, map[string]any{"node": a.id.Node, "protocol": l.Protocol, "interface": l.Interface,
					"port": l.Port, "subject": c.Subject.String(), "certfile_expires_on": c.NotAfter.UTC().Format(time.RFC3339)})
			}
		}
	}
	if len(expired) > 0 {
		writeFailed(w, map[string]any{"reason": "Certificates expiring", "expired": expired})
		return
	}
	writeJSON(w, map[string]string{"status": "ok"})
}

// aliveness is GET /api/aliveness-test/{vhost}: declare aliveness-test, publish to it and get
// the message back, as the user.
func (a *api) aliveness(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh := args[0]
	if !a.vhostAllowed(w, u, vh) {
		return
	}
	if a.findVhost(vh) == nil {
		notFound(w)
		return
	}
	ok, err := a.src.AlivenessTest(u.name, vh)
	if err != nil {
		a.writeFailure(w, r, u, err, channel)
		return
	}
	if !ok {
		writeFailed(w, map[string]any{"reason": "aliveness-test queue is empty"})
		return
	}
	writeJSON(w, map[string]string{"status": "ok"})
}
