package mgmt

import (
	"net/http"
	"strings"

	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/vhost"
)

// Exchanges and bindings (rabbit_mgmt_wm_exchanges, _exchange, _bindings). Listings cover
// the vhosts u has permissions in (every one for an administrator).

func exchangeKey(vh, name string) string { return "exchange\x00" + vh + "\x00" + name }

// exchangeArg is the exchange a path names: "amq.default" is the default exchange "", which a
// path segment cannot be (rabbit_mgmt_util id/2).
func exchangeArg(s string) string {
	if s == "amq.default" {
		return ""
	}
	return s
}

// exchanges serves /api/exchanges, /api/exchanges/{vhost} and /api/exchanges/{vhost}/{name}.
func (a *api) exchanges(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vs, ok := a.vhostsArg(w, u, args)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, v := range vs {
		for _, x := range v.Exchanges() {
			if len(args) == 2 && x.Name != exchangeArg(args[1]) {
				continue
			}
			m := a.exchangeJSON(v.Name(), x)
			a.rates.fill(exchangeKey(v.Name(), x.Name), m)
			out = append(out, m)
		}
	}
	if len(args) == 2 {
		if len(out) == 0 {
			notFound(w)
			return
		}
		// Per-source rates (incoming, outgoing) are kept only in RabbitMQ's detailed mode.
		out[0]["incoming"], out[0]["outgoing"] = []any{}, []any{}
		replyObject(w, r, out[0])
		return
	}
	a.replyList(w, r, out, true, "vhost", "name")
}

func (a *api) exchangeJSON(vh string, x vhost.ExchangeInfo) map[string]any {
	// Warren does not record who declared an exchange; the predeclared ones are the
	// broker's, as in RabbitMQ.
	who := ""
	if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
		who = "rmq-internal"
	}
	m := map[string]any{
		"name": x.Name, "vhost": vh, "type": x.Kind, "durable": x.Durable, "auto_delete": x.AutoDelete,
		"internal": x.Internal, "arguments": tableJSON(x.Arguments), "user_who_performed_action": who,
	}
	if x.Policy != "" {
		m["policy"] = x.Policy
	}
	if x.PublishIn != 0 || x.PublishOut != 0 {
		m["message_stats"] = messageStats("publish_in", x.PublishIn, "publish_out", x.PublishOut)
	}
	if x.Deduplication {
		m["deduplication"] = dedupJSON(x.Deduplicated, x.DedupIDs)
	}
	return m
}

// bindingJSON is a binding as the API lists it.
func bindingJSON(vh string, b binding.Binding) map[string]any {
	kind := "queue"
	if b.Dest.Kind == binding.DestExchange {
		kind = "exchange"
	}
	return map[string]any{
		"source": b.Source, "vhost": vh, "destination": b.Dest.Name, "destination_type": kind,
		"routing_key": b.RoutingKey, "arguments": tableJSON(b.Args), "properties_key": propertiesKey(b.RoutingKey, b.Args),
	}
}

// bindingsDefaultSort is RabbitMQ's order of binding listings.
var bindingsDefaultSort = []string{"vhost", "source", "destination_type", "destination", "routing_key", "properties_key"}

// replyBindings answers the bindings of vs that keep says to.
func (a *api) replyBindings(w http.ResponseWriter, r *http.Request, vs []*vhost.Vhost, keep func(binding.Binding) bool) {
	out := []map[string]any{}
	for _, v := range vs {
		for _, b := range v.Bindings() {
			if keep == nil || keep(b) {
				out = append(out, bindingJSON(v.Name(), b))
			}
		}
	}
	a.replyList(w, r, out, false, bindingsDefaultSort...)
}

// bindings serves /api/bindings and /api/bindings/{vhost}, each queue's implicit binding from
// the default exchange included.
func (a *api) bindings(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vs, ok := a.vhostsArg(w, u, args)
	if !ok {
		return
	}
	a.replyBindings(w, r, vs, nil)
}

// exchangeBindings serves /api/exchanges/{vhost}/{name}/bindings/source and /destination. A
// missing exchange is 404 (RabbitMQ answers [] ).
func (a *api) exchangeBindings(w http.ResponseWriter, r *http.Request, u user, args []string) {
	v, ok := a.vhostArg(w, u, args[0])
	if !ok {
		return
	}
	name := exchangeArg(args[1])
	if !v.HasExchange(name) {
		notFound(w)
		return
	}
	source := strings.HasSuffix(r.URL.Path, "/source")
	a.replyBindings(w, r, []*vhost.Vhost{v}, func(b binding.Binding) bool {
		if source {
			return b.Source == name
		}
		return b.Dest.Kind == binding.DestExchange && b.Dest.Name == name
	})
}

// queueBindings serves /api/queues/{vhost}/{name}/bindings. A missing queue is 404 (RabbitMQ
// answers with the implicit binding of a queue that is not there).
func (a *api) queueBindings(w http.ResponseWriter, r *http.Request, u user, args []string) {
	v, ok := a.vhostArg(w, u, args[0])
	if !ok {
		return
	}
	name := args[1]
	if !v.HasQueue(name) {
		notFound(w)
		return
	}
	a.replyBindings(w, r, []*vhost.Vhost{v}, func(b binding.Binding) bool {
		return b.Dest.Kind == binding.DestQueue && b.Dest.Name == name
	})
}
