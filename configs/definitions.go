package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Definitions are the topology and access control in one or more definitions files, in
// the flat shape of RabbitMQ's definitions.json. Every item has a vhost, "/" by default.
type Definitions struct {
	Vhosts      []Vhost
	Users       []User
	Permissions []Permission
	// TopicPermissions restrict routing and binding keys on topic exchanges.
	TopicPermissions []TopicPermission
	Exchanges        []Exchange
	Queues           []Queue
	Bindings         []Binding
	Policies         []Policy
	// Prune is true if any loaded file says prune: true: objects that are live but no
	// longer in the files are deleted, even queues holding messages.
	Prune bool
}

// Vhost is a virtual host. "/" exists without being listed.
type Vhost struct {
	Pos         Pos
	Name        string
	Description string
	Limits      VhostLimits
}

// User is a user who may log in with a password. PasswordHash is RabbitMQ's: base64 of a
// 4-byte salt followed by the digest of the salt and the password (see HashPassword).
type User struct {
	Pos              Pos
	Name             string
	PasswordHash     string
	HashingAlgorithm string // rabbit_password_hashing_sha256 (default), _sha512 or _md5
	Tags             []string
	Limits           UserLimits
}

// Permission is a user's access to a vhost: glob patterns of the exchange and queue names
// they may configure (declare, delete), write (publish, bind to) and read (consume, bind from).
type Permission struct {
	Pos                    Pos
	User, Vhost            string
	Configure, Write, Read string
}

// Exchange is a declared exchange. Durable is true unless the file says otherwise.
type Exchange struct {
	Pos                           Pos
	Vhost, Name, Type             string
	Durable, AutoDelete, Internal bool
	Arguments                     map[string]any
}

// Queue is a declared queue. Durable is true unless the file says otherwise; exclusive
// queues belong to a connection and cannot be defined in a file.
type Queue struct {
	Pos                 Pos
	Vhost, Name         string
	Durable, AutoDelete bool
	Arguments           map[string]any
}

// Binding routes from the exchange Source to the queue or exchange Destination.
type Binding struct {
	Pos                        Pos
	Vhost, Source, Destination string
	DestinationType            string // "queue" (default) or "exchange"
	RoutingKey                 string
	Arguments                  map[string]any
}

// Policy sets features on the queues and/or exchanges whose names match Pattern. Where
// several match, the one with the highest Priority applies.
type Policy struct {
	Pos                  Pos
	Vhost, Name, Pattern string
	ApplyTo              string // "queues", "exchanges" or "all" (default)
	Priority             int
	Definition           PolicyDefinition
}

// PolicyDefinition is what a policy sets; nil fields are not set. Times are milliseconds,
// sizes bytes.
type PolicyDefinition struct {
	MessageTTL, Expires, MaxLength, MaxLengthBytes, DeliveryLimit, MaxPriority *int64
	Overflow, DeadLetterExchange, DeadLetterRoutingKey, AlternateExchange      *string
	// ConsumerTimeout and DeliveryTimeout are consumer-timeout and delivery-timeout;
	// DeliveryTimeoutAction is delivery-timeout-action (requeue or dead-letter).
	ConsumerTimeout, DeliveryTimeout *int64
	DeliveryTimeoutAction            *string
}

var (
	topKeys        = []string{"vhosts", "users", "permissions", "topic-permissions", "exchanges", "queues", "bindings", "policies", "prune"}
	vhostKeys      = []string{"name", "description", "limits"}
	userKeys       = []string{"name", "password-hash", "hashing-algorithm", "tags", "limits"}
	permissionKeys = []string{"user", "vhost", "configure", "write", "read"}
	exchangeKeys   = []string{"name", "vhost", "type", "durable", "auto-delete", "internal", "arguments"}
	queueKeys      = []string{"name", "vhost", "durable", "auto-delete", "arguments"}
	bindingKeys    = []string{"vhost", "source", "destination", "destination-type", "routing-key", "arguments"}
	policyKeys     = []string{"name", "vhost", "pattern", "apply-to", "priority", "definition"}
	policyDefKeys  = []string{"message-ttl", "expires", "max-length", "max-length-bytes", "overflow",
		"dead-letter-exchange", "dead-letter-routing-key", "delivery-limit", "max-priority", "alternate-exchange",
		"consumer-timeout", "delivery-timeout", "delivery-timeout-action"}
)

const sha256Algorithm = "rabbit_password_hashing_sha256"

// ParseDefinitions reads one definitions file and checks each item on its own (types,
// values, patterns, password hashes). References between items, duplicates and vhosts are
// checked by Validate, once every file is merged: use LoadDefinitions.
func ParseDefinitions(file string, data []byte) (*Definitions, error) {
	defs, err := parseDefinitions(file, data)
	if err != nil {
		return nil, err
	}
	return defs, nil
}

// parseDefinitions is ParseDefinitions that also returns what it could read when there are
// errors, so LoadDefinitions can check references too and report every problem at once.
func parseDefinitions(file string, data []byte) (*Definitions, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file}
	defs := &Definitions{}
	f, ok := d.mapping(root, "", topKeys, nil)
	if ok {
		d.definitions(f, defs)
	}
	return defs, d.errs.err()
}

// LoadDefinitions reads the files (YAML, or RabbitMQ definitions.json exports for names
// ending in .json), merges them in order and validates the whole. The error is an
// ErrorList of every problem in every file.
func LoadDefinitions(paths ...string) (*Definitions, error) {
	all := &Definitions{}
	var errs ErrorList
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, &Error{Pos: Pos{File: p}, Msg: fmt.Sprintf("cannot read the definitions: %v", err)})
			continue
		}
		var defs *Definitions
		if strings.EqualFold(filepath.Ext(p), ".json") {
			defs, err = ImportRabbitMQ(p, data)
		} else {
			defs, err = parseDefinitions(p, data)
		}
		if err != nil {
			errs.add(Pos{File: p}, err)
		}
		if defs != nil {
			all.merge(defs)
		}
	}
	errs = append(errs, all.crossCheck()...)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return all, nil
}

// merge appends o's items to d's.
func (d *Definitions) merge(o *Definitions) {
	d.Vhosts = append(d.Vhosts, o.Vhosts...)
	d.Users = append(d.Users, o.Users...)
	d.Permissions = append(d.Permissions, o.Permissions...)
	d.TopicPermissions = append(d.TopicPermissions, o.TopicPermissions...)
	d.Exchanges = append(d.Exchanges, o.Exchanges...)
	d.Queues = append(d.Queues, o.Queues...)
	d.Bindings = append(d.Bindings, o.Bindings...)
	d.Policies = append(d.Policies, o.Policies...)
	d.Prune = d.Prune || o.Prune
}

// section walks the list under key, calling item for each element's mapping.
func (d *decoder) section(f fields, key string, keys []string, special map[string]string, item func(f fields, path string)) {
	n, ok := f.get(key)
	if !ok {
		return
	}
	items, ok := d.list(n, key)
	if !ok {
		return
	}
	for i, it := range items {
		p := index(key, i)
		if itf, ok := d.mapping(it, p, keys, special); ok {
			item(itf, p)
		}
	}
}

// itemReporter reports per-item check failures at the offending key's value, unless that
// value already failed to decode.
func (d *decoder) itemReporter(f fields, path string) reporter {
	return func(keys []string, msg string) {
		n, p := f.node, path
		for _, k := range keys {
			next, name := lookup(n, k)
			if next == nil {
				break
			}
			n, p = next, child(p, name)
		}
		for _, e := range d.errs {
			if e.Path == p {
				return // the value could not be read: one problem is enough
			}
		}
		d.errorf(n, p, "%s", msg)
	}
}

// lookup is the value of key in mapping n, spelled with - or with _ (as in RabbitMQ's
// JSON), and the key as spelled; nil if it is not there.
func lookup(n *yaml.Node, key string) (*yaml.Node, string) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, ""
	}
	for _, k := range []string{key, strings.ReplaceAll(key, "-", "_")} {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return n.Content[i+1], k
			}
		}
	}
	return nil, ""
}

func (d *decoder) definitions(f fields, defs *Definitions) {
	if n, ok := f.get("prune"); ok {
		defs.Prune, _ = d.boolean(n, "prune")
	}
	d.section(f, "vhosts", vhostKeys, nil, func(f fields, p string) {
		v := Vhost{Pos: d.itemPos(f.node, p)}
		if d.required(f, p, "name") {
			d.strField(f, p, "name", &v.Name)
			d.strField(f, p, "description", &v.Description)
			d.limitsField(f, p, vhostLimitKeys, &v.Limits.MaxConnections, &v.Limits.MaxQueues)
			v.check(d.itemReporter(f, p))
			defs.Vhosts = append(defs.Vhosts, v)
		}
	})
	d.section(f, "users", userKeys, map[string]string{
		"password": `plain-text passwords are not allowed; put the output of "warren passwd" in password-hash`,
	}, func(f fields, p string) {
		u := User{Pos: d.itemPos(f.node, p), HashingAlgorithm: sha256Algorithm}
		if d.required(f, p, "name", "password-hash") {
			d.strField(f, p, "name", &u.Name)
			d.strField(f, p, "password-hash", &u.PasswordHash)
			d.strField(f, p, "hashing-algorithm", &u.HashingAlgorithm)
			if n, ok := f.get("tags"); ok {
				u.Tags, _ = d.strList(n, child(p, "tags"))
			}
			d.limitsField(f, p, userLimitKeys, &u.Limits.MaxConnections, &u.Limits.MaxChannels)
			u.check(d.itemReporter(f, p))
			defs.Users = append(defs.Users, u)
		}
	})
	d.section(f, "permissions", permissionKeys, nil, func(f fields, p string) {
		pm := Permission{Pos: d.itemPos(f.node, p), Vhost: "/"}
		if d.required(f, p, "user") {
			d.strField(f, p, "user", &pm.User)
			d.strField(f, p, "vhost", &pm.Vhost)
			d.strField(f, p, "configure", &pm.Configure)
			d.strField(f, p, "write", &pm.Write)
			d.strField(f, p, "read", &pm.Read)
			pm.check(d.itemReporter(f, p))
			defs.Permissions = append(defs.Permissions, pm)
		}
	})
	d.section(f, "topic-permissions", topicPermissionKeys, nil, func(f fields, p string) {
		if t, ok := d.topicPermissionItem(f, p); ok {
			defs.TopicPermissions = append(defs.TopicPermissions, t)
		}
	})
	d.section(f, "exchanges", exchangeKeys, nil, func(f fields, p string) {
		if x, ok := d.exchangeItem(f, p); ok {
			defs.Exchanges = append(defs.Exchanges, x)
		}
	})
	d.section(f, "queues", queueKeys, map[string]string{
		"exclusive": "exclusive queues belong to a connection and cannot be defined in a file",
	}, func(f fields, p string) {
		if q, ok := d.queueItem(f, p); ok {
			defs.Queues = append(defs.Queues, q)
		}
	})
	d.section(f, "bindings", bindingKeys, nil, func(f fields, p string) {
		if b, ok := d.bindingItem(f, p); ok {
			defs.Bindings = append(defs.Bindings, b)
		}
	})
	d.section(f, "policies", policyKeys, nil, func(f fields, p string) {
		pol := Policy{Pos: d.itemPos(f.node, p), Vhost: "/", ApplyTo: "all"}
		if d.required(f, p, "name", "pattern", "definition") {
			d.strField(f, p, "name", &pol.Name)
			d.strField(f, p, "vhost", &pol.Vhost)
			d.strField(f, p, "pattern", &pol.Pattern)
			d.strField(f, p, "apply-to", &pol.ApplyTo)
			if n, ok := f.get("priority"); ok {
				if v, ok := d.intIn(n, child(p, "priority"), "priority", -1<<31, 1<<31-1); ok {
					pol.Priority = int(v)
				}
			}
			n, _ := f.get("definition")
			if df, ok := d.mapping(n, child(p, "definition"), policyDefKeys, nil); ok {
				d.policyDefinition(df, child(p, "definition"), &pol.Definition)
			}
			pol.check(d.itemReporter(f, p))
			defs.Policies = append(defs.Policies, pol)
		}
	})
}

// exchangeItem decodes one exchange, from a definitions file or a RabbitMQ export.
func (d *decoder) exchangeItem(f fields, p string) (Exchange, bool) {
	x := Exchange{Pos: d.itemPos(f.node, p), Vhost: "/", Durable: true}
	if !d.required(f, p, "name", "type") {
		return x, false
	}
	d.strField(f, p, "name", &x.Name)
	d.strField(f, p, "vhost", &x.Vhost)
	d.strField(f, p, "type", &x.Type)
	d.boolField(f, p, "durable", &x.Durable)
	d.boolField(f, p, d.key("auto-delete"), &x.AutoDelete)
	d.boolField(f, p, "internal", &x.Internal)
	x.Arguments = d.argumentsField(f, p, nil)
	x.check(d.itemReporter(f, p))
	return x, true
}

// queueItem decodes one queue, from a definitions file or a RabbitMQ export.
func (d *decoder) queueItem(f fields, p string) (Queue, bool) {
	q := Queue{Pos: d.itemPos(f.node, p), Vhost: "/", Durable: true}
	if !d.required(f, p, "name") {
		return q, false
	}
	d.strField(f, p, "name", &q.Name)
	d.strField(f, p, "vhost", &q.Vhost)
	d.boolField(f, p, "durable", &q.Durable)
	d.boolField(f, p, d.key("auto-delete"), &q.AutoDelete)
	q.Arguments = d.argumentsField(f, p, queueArgUnits)
	q.check(d.itemReporter(f, p))
	return q, true
}

// bindingItem decodes one binding, from a definitions file or a RabbitMQ export.
func (d *decoder) bindingItem(f fields, p string) (Binding, bool) {
	b := Binding{Pos: d.itemPos(f.node, p), Vhost: "/", DestinationType: "queue"}
	if !d.required(f, p, "source", "destination") {
		return b, false
	}
	d.strField(f, p, "vhost", &b.Vhost)
	d.strField(f, p, "source", &b.Source)
	d.strField(f, p, "destination", &b.Destination)
	d.strField(f, p, d.key("destination-type"), &b.DestinationType)
	d.strField(f, p, d.key("routing-key"), &b.RoutingKey)
	b.Arguments = d.argumentsField(f, p, nil)
	b.check(d.itemReporter(f, p))
	return b, true
}

func (d *decoder) strField(f fields, path, key string, dst *string) {
	if n, ok := f.get(key); ok {
		if s, ok := d.str(n, child(path, key)); ok {
			*dst = s
		}
	}
}

func (d *decoder) boolField(f fields, path, key string, dst *bool) {
	if n, ok := f.get(key); ok {
		if v, ok := d.boolean(n, child(path, key)); ok {
			*dst = v
		}
	}
}

// policyDefinition reads a policy's definition mapping. Times may be durations ("60s")
// and max-length-bytes a size ("10MiB").
func (d *decoder) policyDefinition(f fields, path string, def *PolicyDefinition) {
	ints := map[string]**int64{"message-ttl": &def.MessageTTL, "expires": &def.Expires, "max-length": &def.MaxLength,
		"max-length-bytes": &def.MaxLengthBytes, "delivery-limit": &def.DeliveryLimit, "max-priority": &def.MaxPriority,
		"consumer-timeout": &def.ConsumerTimeout, "delivery-timeout": &def.DeliveryTimeout}
	strs := map[string]**string{"overflow": &def.Overflow, "dead-letter-exchange": &def.DeadLetterExchange,
		"dead-letter-routing-key": &def.DeadLetterRoutingKey, "alternate-exchange": &def.AlternateExchange,
		"delivery-timeout-action": &def.DeliveryTimeoutAction}
	for _, key := range policyDefKeys {
		n, ok := f.get(key)
		if !ok {
			continue
		}
		p := child(path, key)
		if dst, isInt := ints[key]; isInt {
			v, ok := d.value(n, p)
			if !ok {
				continue
			}
			v, ok = d.withUnit(n, p, policyUnits[key], v)
			if !ok {
				continue
			}
			if i, isInt := v.(int64); isInt {
				*dst = &i
			} else {
				d.expected(n, p, "an integer")
			}
			continue
		}
		if s, ok := d.str(n, p); ok {
			*strs[key] = &s
		}
	}
}
