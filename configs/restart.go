package configs

import (
	"reflect"
	"slices"
)

// reloadable reports whether a reload (SIGHUP or `warren config reload`) applies the
// top-level setting key to the running broker. Every other setting takes effect only at the
// next start, and a reload that finds it changed says so. This is the one place to mark a
// setting reloadable.
func reloadable(key string) bool {
	switch key {
	case "definitions", "disk-free-limit", "memory-limit":
		return true
	}
	return false
}

// settings is b's effective value of every top-level setting, keyed as in the file, in a form
// that compares equal when the broker would run the same (a listener's position in the file
// does not count).
func (b *Broker) settings() map[string]any {
	listeners := slices.Clone(b.Listeners)
	for i := range listeners {
		listeners[i].Pos = Pos{}
	}
	return map[string]any{
		"listeners":           listeners,
		"data-dir":            b.DataDir,
		"queue-memory":        b.QueueMemory,
		"disk-free-limit":     b.DiskFreeLimit,
		"memory-limit":        b.MemoryLimit,
		"write-timeout":       b.WriteTimeout,
		"consumer-timeout":    b.ConsumerTimeout,
		"limits":              b.Limits,
		"heartbeat":           b.Heartbeat,
		"handshake-timeout":   b.HandshakeTimeout,
		"log":                 b.Log,
		"loopback-users":      b.LoopbackUsers,
		"definitions":         b.Definitions,
		"control-socket":      b.ControlSocketPath(),
		"flow-control":        b.FlowControl,
		"product":             b.Product,
		"prometheus-listen":   b.PrometheusListen,
		"management-listen":   b.ManagementListen,
		"prometheus-tls":      b.PrometheusTLS,
		"management-tls":      b.ManagementTLS,
		"node-name":           b.Cluster.NodeName,
		"cluster-listen":      b.Cluster.Listen,
		"cluster-advertise":   b.Cluster.Advertise,
		"cluster-peers":       b.Cluster.Peers,
		"cluster-secret-file": b.Cluster.SecretFile,
		"cluster-tls":         b.Cluster.TLS,
	}
}

// NeedRestart names, in the order of the file's keys, the settings whose value in next (a
// configuration just reloaded) differs from running's (the one the broker started with) and
// that a reload does not apply: they wait for a restart.
func NeedRestart(running, next *Broker) []string {
	was, now := running.settings(), next.settings()
	var keys []string
	for _, k := range brokerKeys {
		if !reloadable(k) && !reflect.DeepEqual(was[k], now[k]) {
			keys = append(keys, k)
		}
	}
	return keys
}
