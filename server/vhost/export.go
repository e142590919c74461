package vhost

import (
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/configs"
)

// Export appends the vhost's exchanges, queues and bindings to out: those clients or files
// declared, except the predeclared amq.* exchanges, the default exchange's implicit bindings,
// exclusive queues and server-named amq.* queues, which no file can declare.
func (v *Vhost) Export(out *configs.Definitions) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	exported := map[binding.Destination]bool{}
	for name, x := range v.exchanges {
		if name == "" || strings.HasPrefix(name, "amq.") {
			continue
		}
		d := x.def
		out.Exchanges = append(out.Exchanges, configs.Exchange{Vhost: v.name, Name: name, Type: d.Kind,
			Durable: d.Durable, AutoDelete: d.AutoDelete, Internal: d.Internal, Arguments: exportArgs(d.Args)})
		exported[binding.Destination{Kind: binding.DestExchange, Name: name}] = true
	}
	for name, q := range v.queues {
		if q.owner != nil || strings.HasPrefix(name, "amq.") {
			continue
		}
		out.Queues = append(out.Queues, configs.Queue{Vhost: v.name, Name: name, Durable: q.durable,
			AutoDelete: q.autoDelete, Arguments: exportArgs(q.args)})
		exported[binding.Destination{Kind: binding.DestQueue, Name: name}] = true
	}
	for name, x := range v.exchanges {
		if name == "" {
			continue
		}
		for _, b := range x.router.Bindings() {
			if !exported[b.Dest] {
				continue
			}
			out.Bindings = append(out.Bindings, configs.Binding{Vhost: v.name, Source: name, Destination: b.Dest.Name,
				DestinationType: b.Dest.Kind.String(), RoutingKey: b.RoutingKey, Arguments: exportArgs(b.Args)})
		}
	}
}

// exportArgs turns an argument table into the plain values definitions files hold, without
// Warren's own bookkeeping keys.
func exportArgs(t amqpwire.Table) map[string]any {
	m, err := t.Map()
	if err != nil || len(m) == 0 {
		return nil
	}
	delete(m, policyPriorityKey)
	if len(m) == 0 {
		return nil
	}
	for k, v := range m {
		m[k] = plainValue(v)
	}
	return m
}

// plainValue widens AMQP field values to int64, float64, string, bool, []any and
// map[string]any.
func plainValue(v any) any {
	if n, ok := asInt(v); ok {
		return n
	}
	switch x := v.(type) {
	case float32:
		return float64(x)
	case amqpwire.Table:
		m, err := x.Map()
		if err != nil {
			return nil
		}
		for k, e := range m {
			m[k] = plainValue(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	case []byte:
		return string(x)
	}
	return v
}
