package configs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// predeclared are the exchanges every vhost has.
var predeclared = map[string]bool{"amq.direct": true, "amq.fanout": true, "amq.topic": true, "amq.headers": true, "amq.match": true}

// Validate checks the definitions as LoadDefinitions does: each item on its own (types,
// values, patterns, password hashes), then across items (every vhost, user, exchange and
// queue named is defined, nothing is defined twice, one permission per user and vhost).
// Problems with an item's key are reported at the item's position with the key as Path
// (arguments.x-max-length). The error is an ErrorList of every problem.
func (d *Definitions) Validate() error {
	var errs ErrorList
	itemReporter := func(pos Pos) reporter {
		return func(keys []string, msg string) {
			path := strings.Join(keys, ".")
			if pos.Item != "" {
				path = strings.Join(append([]string{pos.Item}, keys...), ".")
			}
			errs = append(errs, &Error{Pos: pos, Path: path, Msg: msg})
		}
	}
	for _, v := range d.Vhosts {
		v.check(itemReporter(v.Pos))
	}
	for _, u := range d.Users {
		u.check(itemReporter(u.Pos))
	}
	for _, p := range d.Permissions {
		p.check(itemReporter(p.Pos))
	}
	for _, t := range d.TopicPermissions {
		t.check(itemReporter(t.Pos))
	}
	for _, x := range d.Exchanges {
		x.check(itemReporter(x.Pos))
	}
	for _, q := range d.Queues {
		q.check(itemReporter(q.Pos))
	}
	for _, b := range d.Bindings {
		b.check(itemReporter(b.Pos))
	}
	for _, p := range d.Policies {
		p.check(itemReporter(p.Pos))
	}
	errs = append(errs, d.crossCheck()...)
	return errs.err()
}

// vname is an object's name within its vhost.
type vname struct{ vhost, name string }

// crossCheck checks references between items and duplicates.
func (d *Definitions) crossCheck() ErrorList {
	var errs ErrorList
	fail := func(pos Pos, format string, args ...any) {
		errs = append(errs, &Error{Pos: pos, Path: pos.Item, Msg: fmt.Sprintf(format, args...)})
	}
	vhosts := map[string]Pos{}
	for _, v := range d.Vhosts {
		if prev, dup := vhosts[v.Name]; dup {
			fail(v.Pos, "vhost %q is already defined at %s", v.Name, prev)
			continue
		}
		vhosts[v.Name] = v.Pos
	}
	vhost := func(pos Pos, name string) bool {
		if _, ok := vhosts[name]; ok || name == "/" {
			return true
		}
		fail(pos, "vhost %q is not defined", name)
		return false
	}
	users := map[string]Pos{}
	for _, u := range d.Users {
		if prev, dup := users[u.Name]; dup {
			fail(u.Pos, "user %q is already defined at %s", u.Name, prev)
			continue
		}
		users[u.Name] = u.Pos
	}
	perms := map[vname]Pos{}
	for _, p := range d.Permissions {
		if _, ok := users[p.User]; !ok {
			fail(p.Pos, "permission for unknown user %q", p.User)
		}
		vhost(p.Pos, p.Vhost)
		k := vname{p.Vhost, p.User}
		if prev, dup := perms[k]; dup {
			fail(p.Pos, "permission for user %q in vhost %q is already defined at %s", p.User, p.Vhost, prev)
			continue
		}
		perms[k] = p.Pos
	}
	d.crossCheckTopics(fail, users, vhost)
	exchanges := map[vname]Pos{}
	for _, x := range d.Exchanges {
		vhost(x.Pos, x.Vhost)
		k := vname{x.Vhost, x.Name}
		if prev, dup := exchanges[k]; dup {
			fail(x.Pos, "exchange %q in vhost %q is already defined at %s", x.Name, x.Vhost, prev)
			continue
		}
		exchanges[k] = x.Pos
	}
	queues := map[vname]Pos{}
	for _, q := range d.Queues {
		vhost(q.Pos, q.Vhost)
		k := vname{q.Vhost, q.Name}
		if prev, dup := queues[k]; dup {
			fail(q.Pos, "queue %q in vhost %q is already defined at %s", q.Name, q.Vhost, prev)
			continue
		}
		queues[k] = q.Pos
	}
	// exchangeRef checks a DLX or AE name; "" is the default exchange (for a DLX) or none.
	exchangeRef := func(pos Pos, what, vh string, v any) {
		name, ok := v.(string)
		if !ok || name == "" || predeclared[name] {
			return
		}
		if _, ok := exchanges[vname{vh, name}]; !ok {
			fail(pos, "%s %q in vhost %q is not defined", what, name, vh)
		}
	}
	for _, x := range d.Exchanges {
		if v, ok := x.Arguments["alternate-exchange"]; ok {
			exchangeRef(x.Pos, "alternate-exchange", x.Vhost, v)
		}
	}
	for _, q := range d.Queues {
		if v, ok := q.Arguments["x-dead-letter-exchange"]; ok {
			exchangeRef(q.Pos, "dead-letter-exchange", q.Vhost, v)
		}
	}
	bindings := map[string]Pos{}
	for _, b := range d.Bindings {
		if !vhost(b.Pos, b.Vhost) {
			continue
		}
		if _, ok := exchanges[vname{b.Vhost, b.Source}]; !ok && b.Source != "" && !predeclared[b.Source] {
			fail(b.Pos, "binding source exchange %q in vhost %q is not defined", b.Source, b.Vhost)
		}
		dests := queues
		if b.DestinationType == "exchange" {
			dests = exchanges
		}
		if _, ok := dests[vname{b.Vhost, b.Destination}]; !ok && b.Destination != "" &&
			!(b.DestinationType == "exchange" && predeclared[b.Destination]) {
			fail(b.Pos, "binding destination %s %q in vhost %q is not defined", b.DestinationType, b.Destination, b.Vhost)
		}
		k := strings.Join([]string{b.Vhost, b.Source, b.DestinationType, b.Destination, b.RoutingKey, canonical(b.Arguments)}, "\x00")
		if prev, dup := bindings[k]; dup {
			fail(b.Pos, "binding from %q to %s %q with routing key %q in vhost %q is already defined at %s",
				b.Source, b.DestinationType, b.Destination, b.RoutingKey, b.Vhost, prev)
			continue
		}
		bindings[k] = b.Pos
	}
	policies := map[vname]Pos{}
	for _, p := range d.Policies {
		vhost(p.Pos, p.Vhost)
		k := vname{p.Vhost, p.Name}
		if prev, dup := policies[k]; dup {
			fail(p.Pos, "policy %q in vhost %q is already defined at %s", p.Name, p.Vhost, prev)
			continue
		}
		policies[k] = p.Pos
		if dlx := p.Definition.DeadLetterExchange; dlx != nil {
			exchangeRef(p.Pos, "dead-letter-exchange", p.Vhost, *dlx)
		}
		if ae := p.Definition.AlternateExchange; ae != nil {
			exchangeRef(p.Pos, "alternate-exchange", p.Vhost, *ae)
		}
	}
	return errs
}

// canonical is a deterministic text for an arguments value, types included, so that equal
// arguments give equal texts. Empty and nil arguments are the same.
func canonical(v any) string {
	var sb strings.Builder
	writeCanonical(&sb, v)
	return sb.String()
}

func writeCanonical(sb *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		sb.WriteByte('{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(sb, "%q:", k)
			writeCanonical(sb, v[k])
		}
		sb.WriteByte('}')
	case []any:
		sb.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				sb.WriteByte(',')
			}
			writeCanonical(sb, e)
		}
		sb.WriteByte(']')
	case string:
		fmt.Fprintf(sb, "%q", v)
	default:
		fmt.Fprintf(sb, "%T(%v)", v, v)
	}
}
