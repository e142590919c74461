package configs

import (
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// TopicPermission is a user's topic permission on one exchange of a vhost: RabbitMQ's regular
// expressions (RE2 syntax) for the routing keys the user may publish with (Write) and the
// binding keys it may bind with (Read) when the exchange is a topic exchange. {username} and
// {vhost} in them are replaced by the user's name and the vhost; "" matches only "".
type TopicPermission struct {
	Pos                   Pos
	User, Vhost, Exchange string
	Write, Read           string
}

// Limit is a vhost or user limit: nil is unset, a negative value unlimited (as RabbitMQ), 0
// allows nothing.
type Limit = *int64

// VhostLimits are RabbitMQ's vhost limits.
type VhostLimits struct {
	MaxConnections, MaxQueues Limit
}

// UserLimits are RabbitMQ's user limits.
type UserLimits struct {
	MaxConnections, MaxChannels Limit
}

// Set says whether any limit is set.
func (l VhostLimits) Set() bool { return l.MaxConnections != nil || l.MaxQueues != nil }

// Set says whether any limit is set.
func (l UserLimits) Set() bool { return l.MaxConnections != nil || l.MaxChannels != nil }

var (
	topicPermissionKeys = []string{"user", "vhost", "exchange", "write", "read"}
	vhostLimitKeys      = []string{"max-connections", "max-queues"}
	userLimitKeys       = []string{"max-connections", "max-channels"}
)

// limitsField reads the limits mapping under "limits", each key an integer (RabbitMQ's JSON
// spells them with dashes too). keys are the allowed keys, dst their destinations.
func (d *decoder) limitsField(f fields, path string, keys []string, dst ...*Limit) {
	n, ok := f.get("limits")
	if !ok {
		return
	}
	p := child(path, "limits")
	lf, ok := d.mapping(n, p, keys, nil)
	if !ok {
		return
	}
	for i, k := range keys {
		v, ok := lf.get(k)
		if !ok {
			continue
		}
		if x, ok := d.intIn(v, child(p, k), k, -1<<31, 1<<31-1); ok {
			*dst[i] = &x
		}
	}
}

// topicPermissionItem decodes one topic permission (YAML or RabbitMQ's JSON).
func (d *decoder) topicPermissionItem(f fields, p string) (TopicPermission, bool) {
	t := TopicPermission{Pos: d.itemPos(f.node, p), Vhost: "/"}
	if !d.required(f, p, "user", "exchange") {
		return t, false
	}
	d.strField(f, p, "user", &t.User)
	d.strField(f, p, "vhost", &t.Vhost)
	d.strField(f, p, "exchange", &t.Exchange)
	d.strField(f, p, "write", &t.Write)
	d.strField(f, p, "read", &t.Read)
	t.check(d.itemReporter(f, p))
	return t, true
}

func (t TopicPermission) check(report reporter) {
	if t.User == "" {
		report([]string{"user"}, "user must not be empty")
	}
	for _, pat := range []struct{ key, re string }{{"write", t.Write}, {"read", t.Read}} {
		if _, err := regexp.Compile(pat.re); err != nil {
			report([]string{pat.key}, fmt.Sprintf("invalid regular expression %q: %v", pat.re, err))
		}
	}
}

// crossCheckTopics checks that each topic permission names a defined user and vhost, once.
func (d *Definitions) crossCheckTopics(fail func(pos Pos, format string, args ...any), users map[string]Pos, vhost func(Pos, string) bool) {
	type key struct{ vhost, user, exchange string }
	seen := map[key]Pos{}
	for _, t := range d.TopicPermissions {
		if _, ok := users[t.User]; !ok {
			fail(t.Pos, "topic permission for unknown user %q", t.User)
		}
		vhost(t.Pos, t.Vhost)
		k := key{t.Vhost, t.User, t.Exchange}
		if prev, dup := seen[k]; dup {
			fail(t.Pos, "topic permission for user %q on exchange %q in vhost %q is already defined at %s", t.User, t.Exchange, t.Vhost, prev)
			continue
		}
		seen[k] = t.Pos
	}
}

// limitsNode is a limits mapping for WriteYAML, nil when no limit is set.
func limitsNode(keys []string, vals ...Limit) *yaml.Node {
	o := newOut()
	for i, k := range keys {
		if vals[i] != nil {
			o.set(k, intNode(*vals[i]))
		}
	}
	if len(o.n.Content) == 0 {
		return nil
	}
	return o.n
}

// topicPermissionNodes are the topic permissions for WriteYAML.
func (d *Definitions) topicPermissionNodes() []*yaml.Node {
	var items []*yaml.Node
	for _, t := range d.TopicPermissions {
		o := newOut()
		o.str("user", t.User)
		o.str("vhost", t.Vhost)
		o.str("exchange", t.Exchange)
		o.str("write", t.Write)
		o.str("read", t.Read)
		items = append(items, o.n)
	}
	return items
}
