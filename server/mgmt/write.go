package mgmt

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/vhost"
)

// writeSource is what the topology endpoints (declaring and deleting exchanges, queues and
// bindings) need from the broker. Each call acts as the named user, with the permission
// checks and model calls of the AMQP method it stands for.
type writeSource interface {
	DeclareExchangeAs(user, vhost string, d exchange.Definition) (created bool, err error)
	DeleteExchangeAs(user, vhost, name string, ifUnused bool) error
	DeclareQueueAs(user, vhost string, d vhost.QueueDecl) (created bool, err error)
	DeleteQueueAs(user, vhost, name string, ifUnused, ifEmpty bool) error
	BindAs(user, vhost string, b binding.Binding) error
	UnbindAs(user, vhost string, b binding.Binding) error
}

// writeEndpoints are the endpoints that declare and delete exchanges, queues and bindings.
func (a *api) writeEndpoints() []endpoint {
	return []endpoint{
		{http.MethodPut, "exchanges/{}/{}", a.putExchange},
		{http.MethodDelete, "exchanges/{}/{}", a.deleteExchange},
		{http.MethodPut, "queues/{}/{}", a.putQueue},
		{http.MethodDelete, "queues/{}/{}", a.deleteQueue},
		{http.MethodGet, "bindings/{}/e/{}/q/{}", a.pairBindings(binding.DestQueue)},
		{http.MethodPost, "bindings/{}/e/{}/q/{}", a.postBinding(binding.DestQueue)},
		{http.MethodGet, "bindings/{}/e/{}/e/{}", a.pairBindings(binding.DestExchange)},
		{http.MethodPost, "bindings/{}/e/{}/e/{}", a.postBinding(binding.DestExchange)},
		{http.MethodGet, "bindings/{}/e/{}/q/{}/{}", a.oneBinding(binding.DestQueue)},
		{http.MethodDelete, "bindings/{}/e/{}/q/{}/{}", a.oneBinding(binding.DestQueue)},
		{http.MethodGet, "bindings/{}/e/{}/e/{}/{}", a.oneBinding(binding.DestExchange)},
		{http.MethodDelete, "bindings/{}/e/{}/e/{}/{}", a.oneBinding(binding.DestExchange)},
	}
}

// putExchange is PUT /api/exchanges/{vhost}/{name}: exchange.declare with the body's type
// (default direct), durable, auto_delete, internal (default false) and arguments.
func (a *api) putExchange(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh, name := args[0], exchangeName(args[1])
	if !a.vhostAllowed(w, u, vh) {
		return
	}
	d, err := exchangeDefinition(r, name)
	if err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	created, err := a.src.DeclareExchangeAs(u.name, vh, d)
	if err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	writeStatus(w, created)
}

func exchangeDefinition(r *http.Request, name string) (exchange.Definition, error) {
	body, err := decodeBody(r)
	if err != nil {
		return exchange.Definition{}, err
	}
	d := exchange.Definition{Name: name}
	if err := checkNameLength("exchange", name); err != nil {
		return d, err
	}
	if d.Kind, err = stringField(body, "type", "direct"); err != nil {
		return d, err
	}
	if d.Durable, err = boolField(body, "durable", false); err != nil {
		return d, err
	}
	if d.AutoDelete, err = boolField(body, "auto_delete", false); err != nil {
		return d, err
	}
	if d.Internal, err = boolField(body, "internal", false); err != nil {
		return d, err
	}
	d.Args, err = argsField(body, "arguments")
	return d, err
}

// checkNameLength refuses a name AMQP cannot carry (a shortstr, at most 255 bytes) with
// RabbitMQ's text for queues. RabbitMQ creates such an exchange, which no client can then
// name; Warren refuses it the same way.
func checkNameLength(kind, name string) error {
	if len(name) > 255 {
		return bad(fmt.Sprintf("%s should be less than 255 bytes, actually was %d\n", kind, len(name)))
	}
	return nil
}

// deleteExchange is DELETE /api/exchanges/{vhost}/{name}[?if-unused=true].
func (a *api) deleteExchange(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh, name := args[0], exchangeName(args[1])
	if !a.vhostAllowed(w, u, vh) {
		return
	}
	if err := a.src.DeleteExchangeAs(u.name, vh, name, r.URL.Query().Get("if-unused") == "true"); err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// putQueue is PUT /api/queues/{vhost}/{name}: queue.declare with the body's durable,
// auto_delete (default false) and arguments; "node" is accepted and ignored.
func (a *api) putQueue(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh, name := args[0], args[1]
	if !a.vhostAllowed(w, u, vh) {
		return
	}
	d, err := queueDecl(r, name)
	if err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	created, err := a.src.DeclareQueueAs(u.name, vh, d)
	if err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	writeStatus(w, created)
}

func queueDecl(r *http.Request, name string) (vhost.QueueDecl, error) {
	body, err := decodeBody(r)
	if err != nil {
		return vhost.QueueDecl{}, err
	}
	d := vhost.QueueDecl{Name: name}
	if err := checkNameLength("queue", name); err != nil {
		return d, err
	}
	if d.Durable, err = boolField(body, "durable", false); err != nil {
		return d, err
	}
	if d.AutoDelete, err = boolField(body, "auto_delete", false); err != nil {
		return d, err
	}
	d.Args, err = argsField(body, "arguments")
	return d, err
}

// deleteQueue is DELETE /api/queues/{vhost}/{name}[?if-unused=true][&if-empty=true].
func (a *api) deleteQueue(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vh, name := args[0], args[1]
	if !a.vhostAllowed(w, u, vh) {
		return
	}
	q := r.URL.Query()
	if err := a.src.DeleteQueueAs(u.name, vh, name, q.Get("if-unused") == "true", q.Get("if-empty") == "true"); err != nil {
		a.writeFailure(w, r, u, err, direct)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// between returns the bindings from source to dest in vh, or false when the vhost, the
// source or the destination does not exist.
func (a *api) between(vh, source string, dest binding.Destination) ([]binding.Binding, bool) {
	v := a.findVhost(vh)
	if v == nil {
		return nil, false
	}
	var srcOK, destOK bool
	for _, x := range v.Exchanges() {
		srcOK = srcOK || x.Name == source
		destOK = destOK || (dest.Kind == binding.DestExchange && x.Name == dest.Name)
	}
	if dest.Kind == binding.DestQueue {
		for _, q := range v.Queues() {
			destOK = destOK || q.Name == dest.Name
		}
	}
	if !srcOK || !destOK {
		return nil, false
	}
	var out []binding.Binding
	for _, b := range v.Bindings() {
		if b.Source == source && b.Dest == dest {
			out = append(out, b)
		}
	}
	return out, true
}

// pairBindings is GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}: the bindings
// between the two.
func (a *api) pairBindings(kind binding.DestKind) handler {
	return func(w http.ResponseWriter, _ *http.Request, u user, args []string) {
		vh := args[0]
		if !a.vhostAllowed(w, u, vh) {
			return
		}
		// RabbitMQ lists nothing, rather than 404, when either end does not exist.
		bs, _ := a.between(vh, exchangeName(args[1]), destination(kind, args[2]))
		out := make([]map[string]any, 0, len(bs))
		for _, b := range bs {
			out = append(out, bindingJSON(vh, b))
		}
		writeJSON(w, out)
	}
}

func destination(kind binding.DestKind, name string) binding.Destination {
	if kind == binding.DestExchange {
		name = exchangeName(name)
	}
	return binding.Destination{Kind: kind, Name: name}
}

// postBinding is POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}: queue.bind or
// exchange.bind with the body's routing_key and arguments; 201 with the new binding's
// properties_key in Location, relative to the request's path.
func (a *api) postBinding(kind binding.DestKind) handler {
	return func(w http.ResponseWriter, r *http.Request, u user, args []string) {
		vh := args[0]
		if !a.vhostAllowed(w, u, vh) {
			return
		}
		b, err := bindingBody(r, exchangeName(args[1]), destination(kind, args[2]))
		if err != nil {
			a.writeFailure(w, r, u, err, direct)
			return
		}
		if err := a.src.BindAs(u.name, vh, b); err != nil {
			a.writeFailure(w, r, u, err, direct)
			return
		}
		w.Header().Set("Location", url.QueryEscape(args[2])+"/"+url.QueryEscape(propertiesKey(b.RoutingKey, b.Args)))
		w.WriteHeader(http.StatusCreated)
	}
}

func bindingBody(r *http.Request, source string, dest binding.Destination) (binding.Binding, error) {
	body, err := decodeBody(r)
	if err != nil {
		return binding.Binding{}, err
	}
	b := binding.Binding{Source: source, Dest: dest}
	if b.RoutingKey, err = stringField(body, "routing_key", ""); err != nil {
		return b, err
	}
	b.Args, err = argsField(body, "arguments")
	return b, err
}

// oneBinding is GET and DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}:
// the binding whose properties_key is props (404 when there is none).
func (a *api) oneBinding(kind binding.DestKind) handler {
	return func(w http.ResponseWriter, r *http.Request, u user, args []string) {
		vh := args[0]
		if !a.vhostAllowed(w, u, vh) {
			return
		}
		bs, ok := a.between(vh, exchangeName(args[1]), destination(kind, args[2]))
		if !ok {
			notFound(w)
			return
		}
		b, found := findBinding(bs, args[3])
		if !found {
			notFound(w)
			return
		}
		if r.Method == http.MethodGet {
			writeJSON(w, bindingJSON(vh, b))
			return
		}
		if err := a.src.UnbindAs(u.name, vh, b); err != nil {
			a.writeFailure(w, r, u, err, direct)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// findBinding is the binding among bs that props names.
func findBinding(bs []binding.Binding, props string) (binding.Binding, bool) {
	key, hash, ok := splitPropertiesKey(props)
	if !ok {
		return binding.Binding{}, false
	}
	for _, b := range bs {
		if b.RoutingKey != key {
			continue
		}
		if hash == "" && b.Args.Len() == 0 || hash != "" && b.Args.Len() > 0 && argsHash(b.Args) == hash {
			return b, true
		}
	}
	return binding.Binding{}, false
}
