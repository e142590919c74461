package configs

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sort orders every list as WriteYAML writes it: by vhost, then name (permissions by vhost,
// then user; bindings by vhost, source, destination-type, destination, routing-key and
// arguments).
func (d *Definitions) Sort() {
	slices.SortStableFunc(d.Vhosts, func(a, b Vhost) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortStableFunc(d.Users, func(a, b User) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortStableFunc(d.Permissions, func(a, b Permission) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.User, b.User))
	})
	slices.SortStableFunc(d.TopicPermissions, func(a, b TopicPermission) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.User, b.User), cmp.Compare(a.Exchange, b.Exchange))
	})
	slices.SortStableFunc(d.Exchanges, func(a, b Exchange) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(d.Queues, func(a, b Queue) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(d.Bindings, func(a, b Binding) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.Source, b.Source),
			cmp.Compare(a.DestinationType, b.DestinationType), cmp.Compare(a.Destination, b.Destination),
			cmp.Compare(a.RoutingKey, b.RoutingKey), cmp.Compare(canonical(a.Arguments), canonical(b.Arguments)))
	})
	slices.SortStableFunc(d.Policies, func(a, b Policy) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.Name, b.Name))
	})
}

// WriteYAML writes the definitions as a definitions file, sorted (see Sort) and without
// keys at their defaults, so that the same definitions always give the same bytes and
// LoadDefinitions reads back the same definitions. d is not modified.
func (d *Definitions) WriteYAML(w io.Writer) error {
	s := *d
	s.Vhosts, s.Users, s.Permissions = slices.Clone(d.Vhosts), slices.Clone(d.Users), slices.Clone(d.Permissions)
	s.TopicPermissions = slices.Clone(d.TopicPermissions)
	s.Exchanges, s.Queues = slices.Clone(d.Exchanges), slices.Clone(d.Queues)
	s.Bindings, s.Policies = slices.Clone(d.Bindings), slices.Clone(d.Policies)
	s.Sort()
	root, err := s.yamlNode()
	if err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return fmt.Errorf("write definitions: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write definitions: %w", err)
	}
	return nil
}

// out builds a mapping node key by key.
type out struct{ n *yaml.Node }

func newOut() out { return out{&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}} }

func (o out) set(key string, v *yaml.Node) {
	o.n.Content = append(o.n.Content, strNode(key), v)
}

func (o out) str(key, v string) { o.set(key, strNode(v)) }
func (o out) boolean(key string, v bool) {
	o.set(key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)})
}

// strNode is a string; ones that YAML 1.1 readers take as booleans are quoted too.
func strNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off":
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}
func intNode(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

// sizeNode writes a byte count with a unit when one divides it ("10MiB").
func sizeNode(i int64) *yaml.Node {
	if s := ByteSize(i).String(); strings.HasSuffix(s, "B") {
		return strNode(s)
	}
	return intNode(i)
}

func (d *Definitions) yamlNode() (*yaml.Node, error) {
	root := newOut()
	section := func(key string, items []*yaml.Node) {
		if len(items) > 0 {
			root.set(key, &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items})
		}
	}
	var items []*yaml.Node
	for _, v := range d.Vhosts {
		o := newOut()
		o.str("name", v.Name)
		if v.Description != "" {
			o.str("description", v.Description)
		}
		if l := limitsNode(vhostLimitKeys, v.Limits.MaxConnections, v.Limits.MaxQueues); l != nil {
			o.set("limits", l)
		}
		items = append(items, o.n)
	}
	section("vhosts", items)
	items = nil
	for _, u := range d.Users {
		o := newOut()
		o.str("name", u.Name)
		o.str("password-hash", u.PasswordHash)
		if u.HashingAlgorithm != sha256Algorithm && u.HashingAlgorithm != "" {
			o.str("hashing-algorithm", u.HashingAlgorithm)
		}
		if len(u.Tags) > 0 {
			tags := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
			for _, t := range u.Tags {
				tags.Content = append(tags.Content, strNode(t))
			}
			o.set("tags", tags)
		}
		if l := limitsNode(userLimitKeys, u.Limits.MaxConnections, u.Limits.MaxChannels); l != nil {
			o.set("limits", l)
		}
		items = append(items, o.n)
	}
	section("users", items)
	items = nil
	for _, p := range d.Permissions {
		o := newOut()
		o.str("user", p.User)
		o.str("vhost", p.Vhost)
		o.str("configure", p.Configure)
		o.str("write", p.Write)
		o.str("read", p.Read)
		items = append(items, o.n)
	}
	section("permissions", items)
	section("topic-permissions", d.topicPermissionNodes())
	items = nil
	for _, x := range d.Exchanges {
		o := newOut()
		o.str("name", x.Name)
		o.str("vhost", x.Vhost)
		o.str("type", x.Type)
		if !x.Durable {
			o.boolean("durable", false)
		}
		if x.AutoDelete {
			o.boolean("auto-delete", true)
		}
		if x.Internal {
			o.boolean("internal", true)
		}
		if err := o.arguments(x.Arguments, nil); err != nil {
			return nil, fmt.Errorf("exchange %q in vhost %q: %w", x.Name, x.Vhost, err)
		}
		items = append(items, o.n)
	}
	section("exchanges", items)
	items = nil
	for _, q := range d.Queues {
		o := newOut()
		o.str("name", q.Name)
		o.str("vhost", q.Vhost)
		if !q.Durable {
			o.boolean("durable", false)
		}
		if q.AutoDelete {
			o.boolean("auto-delete", true)
		}
		if err := o.arguments(q.Arguments, queueArgUnits); err != nil {
			return nil, fmt.Errorf("queue %q in vhost %q: %w", q.Name, q.Vhost, err)
		}
		items = append(items, o.n)
	}
	section("queues", items)
	items = nil
	for _, b := range d.Bindings {
		o := newOut()
		o.str("vhost", b.Vhost)
		o.str("source", b.Source)
		o.str("destination", b.Destination)
		if b.DestinationType != "queue" && b.DestinationType != "" {
			o.str("destination-type", b.DestinationType)
		}
		if b.RoutingKey != "" {
			o.str("routing-key", b.RoutingKey)
		}
		if err := o.arguments(b.Arguments, nil); err != nil {
			return nil, fmt.Errorf("binding from %q to %q in vhost %q: %w", b.Source, b.Destination, b.Vhost, err)
		}
		items = append(items, o.n)
	}
	section("bindings", items)
	items = nil
	for _, p := range d.Policies {
		o := newOut()
		o.str("name", p.Name)
		o.str("vhost", p.Vhost)
		o.str("pattern", p.Pattern)
		if p.ApplyTo != "all" && p.ApplyTo != "" {
			o.str("apply-to", p.ApplyTo)
		}
		if p.Priority != 0 {
			o.set("priority", intNode(int64(p.Priority)))
		}
		o.set("definition", p.Definition.yamlNode())
		items = append(items, o.n)
	}
	section("policies", items)
	if d.Prune {
		root.boolean("prune", true)
	}
	return root.n, nil
}

func (def PolicyDefinition) yamlNode() *yaml.Node {
	o := newOut()
	num := func(key string, v *int64) {
		if v == nil {
			return
		}
		if key == "max-length-bytes" {
			o.set(key, sizeNode(*v))
		} else {
			o.set(key, intNode(*v))
		}
	}
	str := func(key string, v *string) {
		if v != nil {
			o.str(key, *v)
		}
	}
	num("message-ttl", def.MessageTTL)
	num("expires", def.Expires)
	num("max-length", def.MaxLength)
	num("max-length-bytes", def.MaxLengthBytes)
	str("overflow", def.Overflow)
	str("dead-letter-exchange", def.DeadLetterExchange)
	str("dead-letter-routing-key", def.DeadLetterRoutingKey)
	num("delivery-limit", def.DeliveryLimit)
	num("max-priority", def.MaxPriority)
	str("alternate-exchange", def.AlternateExchange)
	num("consumer-timeout", def.ConsumerTimeout)
	num("delivery-timeout", def.DeliveryTimeout)
	str("delivery-timeout-action", def.DeliveryTimeoutAction)
	return o.n
}

// arguments writes non-empty arguments, keys sorted; sizes in keys that take units are
// written with one.
func (o out) arguments(args map[string]any, units map[string]unit) error {
	if len(args) == 0 {
		return nil
	}
	m := newOut()
	for _, k := range slices.Sorted(maps.Keys(args)) {
		if units[k] == size {
			if i, ok := asInt(args[k]); ok {
				m.set(k, sizeNode(i))
				continue
			}
		}
		n, err := valueNode(args[k])
		if err != nil {
			return fmt.Errorf("argument %s: %w", k, err)
		}
		m.set(k, n)
	}
	o.set("arguments", m.n)
	return nil
}

// valueNode is the YAML for an argument value that value() reads back as the same value.
func valueNode(v any) (*yaml.Node, error) {
	if i, ok := asInt(v); ok {
		return intNode(i), nil
	}
	switch v := v.(type) {
	case string:
		return strNode(v), nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case float32:
		return floatNode(float64(v))
	case float64:
		return floatNode(v)
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i, e := range v {
			en, err := valueNode(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			n.Content = append(n.Content, en)
		}
		if len(v) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case map[string]any:
		m := newOut()
		for _, k := range slices.Sorted(maps.Keys(v)) {
			en, err := valueNode(v[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m.set(k, en)
		}
		if len(v) == 0 {
			m.n.Style = yaml.FlowStyle
		}
		return m.n, nil
	}
	return nil, fmt.Errorf("values of type %T cannot be written", v)
}

// floatNode writes a float so that it reads back as a float: 1 is written 1.0.
func floatNode(f float64) (*yaml.Node, error) {
	var s string
	switch {
	case math.IsNaN(f):
		return nil, fmt.Errorf("NaN cannot be written")
	case math.IsInf(f, 1):
		s = ".inf"
	case math.IsInf(f, -1):
		s = "-.inf"
	default:
		s = strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: s}, nil
}
