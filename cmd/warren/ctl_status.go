package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// ctlStatus is warren ctl status: the node, its version and uptime, listeners, alarms, object
// and message totals and the message rates, from /api/overview, /api/nodes and
// /api/health/checks/alarms (RabbitMQ's, or Warren's).
func ctlStatus(c *ctlClient, o ctlOptions, stdout io.Writer) error {
	var ov struct {
		Node            string `json:"node"`
		ProductName     string `json:"product_name"`
		ProductVersion  string `json:"product_version"`
		RabbitMQVersion string `json:"rabbitmq_version"`
		ClusterName     string `json:"cluster_name"`
		Listeners       []struct {
			Protocol  string      `json:"protocol"`
			IPAddress string      `json:"ip_address"`
			Port      json.Number `json:"port"`
		} `json:"listeners"`
		ObjectTotals map[string]json.Number `json:"object_totals"`
		QueueTotals  map[string]any         `json:"queue_totals"`
		MessageStats map[string]any         `json:"message_stats"`
	}
	if err := c.getJSON(apiPath("overview"), &ov); err != nil {
		return fmt.Errorf("status: GET /api/overview: %w", err)
	}
	var nodes []struct {
		Name    string      `json:"name"`
		Uptime  json.Number `json:"uptime"`
		Running *bool       `json:"running"`
	}
	if err := c.getJSON(apiPath("nodes"), &nodes); err != nil {
		return fmt.Errorf("status: GET /api/nodes: %w", err)
	}
	alarms, err := ctlAlarms(c)
	if err != nil {
		return fmt.Errorf("status: GET /api/health/checks/alarms: %w", err)
	}

	r := ctlStatusReport{Node: ov.Node, ProductName: ov.ProductName, ProductVersion: ov.ProductVersion,
		RabbitMQVersion: ov.RabbitMQVersion, ClusterName: ov.ClusterName, Alarms: alarms,
		ObjectTotals: ov.ObjectTotals, QueueTotals: map[string]json.Number{}, MessageRates: map[string]json.Number{},
		Listeners: []string{}}
	for i, n := range nodes {
		if n.Name == ov.Node || (i == 0 && ov.Node == "") {
			r.Node = n.Name
			if ms, err := n.Uptime.Int64(); err == nil {
				r.UptimeMS = ms
			}
		}
	}
	for _, l := range ov.Listeners {
		r.Listeners = append(r.Listeners, l.Protocol+" "+net.JoinHostPort(l.IPAddress, l.Port.String()))
	}
	for _, k := range []string{"messages", "messages_ready", "messages_unacknowledged"} {
		if n, ok := ov.QueueTotals[k].(json.Number); ok {
			r.QueueTotals[k] = n
		}
	}
	for _, k := range ctlRates() {
		if v, ok := lookup(ov.MessageStats, k+"_details.rate"); ok {
			if n, ok := v.(json.Number); ok {
				r.MessageRates[k] = n
			}
		}
	}
	if o.format == "json" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return r.write(stdout, o.format)
}

// ctlRates are the message rates status shows, by their message_stats names.
func ctlRates() []string {
	return []string{"publish", "confirm", "deliver_get", "redeliver", "ack", "return_unroutable"}
}

// ctlStatusReport is what status prints; --format json prints it as it is.
type ctlStatusReport struct {
	Node            string                 `json:"node"`
	ProductName     string                 `json:"product_name"`
	ProductVersion  string                 `json:"product_version"`
	RabbitMQVersion string                 `json:"rabbitmq_version"`
	ClusterName     string                 `json:"cluster_name"`
	UptimeMS        int64                  `json:"uptime_ms"`
	Listeners       []string               `json:"listeners"`
	Alarms          []string               `json:"alarms"`
	ObjectTotals    map[string]json.Number `json:"object_totals"`
	QueueTotals     map[string]json.Number `json:"queue_totals"`
	MessageRates    map[string]json.Number `json:"message_rates"`
}

// write prints r as "key value" lines: aligned for a table, tab-separated for tsv.
func (r ctlStatusReport) write(w io.Writer, format string) error {
	type kv struct{ k, v string }
	none := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return strings.Join(l, ", ")
	}
	lines := []kv{
		{"node", r.Node},
		{"product", strings.TrimSpace(r.ProductName + " " + r.ProductVersion)},
		{"rabbitmq_version", r.RabbitMQVersion},
		{"cluster_name", r.ClusterName},
		{"uptime", formatUptime(time.Duration(r.UptimeMS) * time.Millisecond)},
		{"listeners", none(r.Listeners)},
		{"alarms", none(r.Alarms)},
	}
	for _, k := range []string{"connections", "channels", "exchanges", "queues", "consumers"} {
		if n, ok := r.ObjectTotals[k]; ok {
			lines = append(lines, kv{k, n.String()})
		}
	}
	for _, k := range []string{"messages", "messages_ready", "messages_unacknowledged"} {
		if n, ok := r.QueueTotals[k]; ok {
			lines = append(lines, kv{k, n.String()})
		}
	}
	for _, k := range ctlRates() {
		if n, ok := r.MessageRates[k]; ok {
			lines = append(lines, kv{k + "_rate", n.String() + "/s"})
		}
	}
	if format == "tsv" {
		for _, l := range lines {
			if _, err := fmt.Fprintf(w, "%s\t%s\n", l.k, l.v); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintf(tw, "%s:\t%s\n", l.k, l.v)
	}
	return tw.Flush()
}

// formatUptime is d to the second, with days: 2d3h4m5s.
func formatUptime(d time.Duration) string {
	d = d.Truncate(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd%s", days, d)
	}
	return d.String()
}

// ctlAlarms asks /api/health/checks/alarms, which answers 200 with no alarm and 503 with
// the alarms in effect: "memory on rabbit@host".
func ctlAlarms(c *ctlClient) ([]string, error) {
	status, body, err := c.do(http.MethodGet, apiPath("health", "checks", "alarms"), nil, nil)
	var ae *apiError
	if err != nil && !(errors.As(err, &ae) && status == http.StatusServiceUnavailable) {
		return nil, err
	}
	var check struct {
		Status string `json:"status"`
		Alarms []struct {
			Resource string `json:"resource"`
			Node     string `json:"node"`
		} `json:"alarms"`
	}
	if err := decodeJSON(body, &check); err != nil {
		return nil, err
	}
	alarms := []string{}
	for _, a := range check.Alarms {
		alarms = append(alarms, a.Resource+" on "+a.Node)
	}
	if status == http.StatusServiceUnavailable && len(alarms) == 0 {
		alarms = append(alarms, "unknown ("+check.Status+")")
	}
	return alarms, nil
}
