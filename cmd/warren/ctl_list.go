package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// ctlObject is a kind of object warren ctl lists: where the API lists it, rabbitmqctl's
// default columns, and the fields RabbitMQ 3.10's API gives it (a column may also be any
// field an answer has, or a dotted path into one).
type ctlObject struct {
	coll string
	// inVhost is the path of the listing of one vhost; "" filters the full listing on its
	// "vhost" field; noVhost objects have none.
	inVhost  func(v string) string
	noVhost  bool
	defaults []string
	fields   []string
}

const ctlObjectNames = "queues exchanges bindings connections channels consumers users vhosts policies permissions nodes"

// ctlObjectSpec describes the objects warren ctl list OBJECTS lists.
func ctlObjectSpec(name string) (ctlObject, bool) {
	under := func(coll string) func(string) string {
		return func(v string) string { return apiPath(coll, v) }
	}
	switch name {
	case "queues":
		return ctlObject{coll: "queues", inVhost: under("queues"), defaults: []string{"name", "messages"},
			fields: []string{"name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "type", "state", "node",
				"policy", "operator_policy", "effective_policy_definition", "consumers", "consumer_capacity",
				"consumer_utilisation", "exclusive_consumer_tag", "single_active_consumer_tag",
				"messages", "messages_ready", "messages_unacknowledged", "messages_details", "messages_ready_details",
				"messages_unacknowledged_details", "messages_ram", "messages_ready_ram", "messages_unacknowledged_ram",
				"messages_persistent", "messages_paged_out", "message_bytes", "message_bytes_ready",
				"message_bytes_unacknowledged", "message_bytes_ram", "message_bytes_persistent", "message_bytes_paged_out",
				"head_message_timestamp", "idle_since", "memory", "reductions", "garbage_collection",
				"backing_queue_status", "message_stats", "leader", "members", "online"}}, true
	case "exchanges":
		return ctlObject{coll: "exchanges", inVhost: under("exchanges"), defaults: []string{"name", "type"},
			fields: []string{"name", "vhost", "type", "durable", "auto_delete", "internal", "arguments", "policy",
				"user_who_performed_action", "message_stats"}}, true
	case "bindings":
		return ctlObject{coll: "bindings", inVhost: under("bindings"),
			defaults: []string{"source", "destination", "destination_type", "routing_key", "arguments"},
			fields:   []string{"source", "vhost", "destination", "destination_type", "routing_key", "arguments", "properties_key"}}, true
	case "connections":
		return ctlObject{coll: "connections", defaults: []string{"name", "user", "peer_host", "peer_port", "state"},
			fields: []string{"name", "node", "type", "user", "vhost", "user_who_performed_action", "user_provided_name",
				"host", "port", "peer_host", "peer_port", "protocol", "auth_mechanism", "ssl", "ssl_protocol",
				"ssl_key_exchange", "ssl_cipher", "ssl_hash", "peer_cert_subject", "peer_cert_issuer",
				"peer_cert_validity", "timeout", "frame_max", "channel_max", "client_properties", "connected_at",
				"state", "channels", "recv_oct", "send_oct", "recv_cnt", "send_cnt", "send_pend", "reductions",
				"garbage_collection"}}, true
	case "channels":
		return ctlObject{coll: "channels", defaults: []string{"name", "user", "consumer_count", "messages_unacknowledged"},
			fields: []string{"name", "node", "number", "user", "vhost", "user_who_performed_action", "connection_details",
				"consumer_count", "messages_unacknowledged", "messages_unconfirmed", "messages_uncommitted",
				"acks_uncommitted", "pending_raft_commands", "prefetch_count", "global_prefetch_count", "state",
				"transactional", "confirm", "idle_since", "garbage_collection", "reductions", "message_stats"}}, true
	case "consumers":
		return ctlObject{coll: "consumers", inVhost: under("consumers"),
			defaults: []string{"queue.name", "channel_details.name", "consumer_tag", "ack_required", "prefetch_count", "active", "arguments"},
			fields: []string{"queue", "channel_details", "consumer_tag", "exclusive", "ack_required", "prefetch_count",
				"active", "activity_status", "arguments"}}, true
	case "users":
		return ctlObject{coll: "users", noVhost: true, defaults: []string{"name", "tags"},
			fields: []string{"name", "password_hash", "hashing_algorithm", "tags", "limits"}}, true
	case "vhosts":
		return ctlObject{coll: "vhosts", noVhost: true, defaults: []string{"name"},
			fields: []string{"name", "description", "tags", "default_queue_type", "metadata", "tracing", "cluster_state",
				"messages", "messages_ready", "messages_unacknowledged", "recv_oct", "send_oct", "message_stats"}}, true
	case "policies":
		return ctlObject{coll: "policies", inVhost: under("policies"),
			defaults: []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"},
			fields:   []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"}}, true
	case "nodes":
		// Every member of a cluster, each with its own figures; a member that is down is
		// listed with running false (as rabbitmqadmin list nodes shows it).
		return ctlObject{coll: "nodes", noVhost: true, defaults: []string{"name", "running", "mem_used", "fd_used", "uptime"},
			fields: []string{"name", "type", "running", "uptime", "os_pid", "mem_used", "mem_limit", "mem_alarm",
				"disk_free", "disk_free_limit", "disk_free_alarm", "fd_used", "fd_total", "sockets_used", "sockets_total",
				"proc_used", "proc_total", "run_queue", "processors", "partitions", "rates_mode", "net_ticktime",
				"exchange_types", "applications", "contexts", "listeners", "enabled_plugins", "auth_mechanisms"}}, true
	case "permissions":
		return ctlObject{coll: "permissions",
			inVhost:  func(v string) string { return apiPath("vhosts", v, "permissions") },
			defaults: []string{"user", "vhost", "configure", "write", "read"},
			fields:   []string{"user", "vhost", "configure", "write", "read"}}, true
	}
	return ctlObject{}, false
}

// ctlList is warren ctl list OBJECTS [COLUMN...].
func ctlList(c *ctlClient, o ctlOptions, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return ctlUsageError("usage: warren ctl list OBJECTS [COLUMN...]; OBJECTS: %s", ctlObjectNames)
	}
	obj, ok := ctlObjectSpec(args[0])
	if !ok {
		return ctlUsageError("ctl list: unknown objects %q: want one of %s", args[0], ctlObjectNames)
	}
	if obj.noVhost && o.vhostSet {
		return ctlUsageError("ctl list %s: --vhost does not apply", args[0])
	}
	path := apiPath(obj.coll)
	if o.vhostSet && obj.inVhost != nil {
		path = obj.inVhost(o.vhost)
	}
	rows, err := c.list(path)
	if err != nil {
		if o.vhostSet {
			return fmt.Errorf("list %s in vhost %q: %w", args[0], o.vhost, err)
		}
		return fmt.Errorf("list %s: %w", args[0], err)
	}
	if o.vhostSet && obj.inVhost == nil {
		rows = slices.DeleteFunc(rows, func(r map[string]any) bool { return r["vhost"] != o.vhost })
	}
	cols := args[1:]
	if len(cols) == 0 {
		cols = obj.defaults
	}
	if err := checkColumns(args[0], cols, obj.fields, rows); err != nil {
		return err
	}
	return writeRows(stdout, o.format, cols, rows)
}

// list GETs a listing: a JSON array of objects (or a page of one, should a proxy add page=).
func (c *ctlClient) list(path string) ([]map[string]any, error) {
	b, err := c.get(path)
	if err != nil {
		return nil, err
	}
	var rows []map[string]any
	if err := decodeJSON(b, &rows); err != nil {
		var page struct {
			Items []map[string]any `json:"items"`
		}
		if decodeJSON(b, &page) != nil || page.Items == nil {
			return nil, err
		}
		rows = page.Items
	}
	return rows, nil
}

// checkColumns refuses a column whose first name is neither a field of these objects in
// RabbitMQ's API nor a field any of rows has, listing the valid ones.
func checkColumns(objects string, cols, fields []string, rows []map[string]any) error {
	valid := map[string]bool{}
	for _, f := range fields {
		valid[f] = true
	}
	for _, r := range rows {
		for k := range r {
			valid[k] = true
		}
	}
	for _, col := range cols {
		if col != "" && valid[strings.SplitN(col, ".", 2)[0]] {
			continue
		}
		names := make([]string, 0, len(valid))
		for k := range valid {
			names = append(names, k)
		}
		sort.Strings(names)
		return ctlUsageError("ctl list %s: unknown column %q; the columns are: %s (or a dotted path into one, e.g. message_stats.publish_details.rate)",
			objects, col, strings.Join(names, " "))
	}
	return nil
}

// lookup follows the dotted path col into row; ok is false when a part is missing.
func lookup(row map[string]any, col string) (any, bool) {
	var v any = row
	for _, part := range strings.Split(col, ".") {
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, false
		}
		if v, isMap = m[part]; !isMap {
			return nil, false
		}
	}
	return v, true
}

// cell is how a value prints in a table or TSV: strings as they are, numbers as the API wrote
// them, lists of strings joined with commas, null and missing values empty, other objects
// and lists as compact JSON.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	case []any:
		strs := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return compactJSON(v)
			}
			strs = append(strs, s)
		}
		return strings.Join(strs, ",")
	}
	return compactJSON(v)
}
