package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ImportRabbitMQ reads a RabbitMQ definitions.json, as written by `rabbitmqctl
// export_definitions` or the management API, checking each item on its own as
// ParseDefinitions does; call Validate (or use LoadDefinitions) to check references.
// Permission and policy patterns, which RabbitMQ takes as regular expressions, are
// translated to globs where they have a common shape. What Warren cannot honour is an
// error, not silently dropped: runtime parameters other than vhost limits (federation,
// shovels) and policy keys other than Warren's (ha-mode, queue-mode, ...). Positions
// are the JSON's lines and columns.
func ImportRabbitMQ(file string, data []byte) (*Definitions, error) {
	if err := json.Unmarshal(data, new(any)); err != nil {
		return nil, ErrorList{jsonError(file, data, err)}
	}
	// Outside strings, tabs in valid JSON are whitespace, which YAML refuses in places.
	root, err := parseYAML(file, bytes.ReplaceAll(data, []byte("\t"), []byte(" ")))
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file, snake: true}
	defs := &Definitions{}
	if f, ok := d.mapping(root, "", nil, nil); ok {
		d.rabbitmq(f, defs)
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return defs, nil
}

// jsonError places a JSON syntax error at its line and column.
func jsonError(file string, data []byte, err error) *Error {
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return &Error{Pos: Pos{File: file}, Msg: fmt.Sprintf("invalid JSON: %v", err)}
	}
	before := data[:min(int(syn.Offset), len(data))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return &Error{Pos: Pos{File: file, Line: line, Col: col}, Msg: fmt.Sprintf("invalid JSON: %v", err)}
}

// items walks the list under key, skipping elements that are not mappings. Unknown keys
// are ignored: each RabbitMQ version adds some.
func (d *decoder) items(f fields, key string, item func(f fields, path string)) {
	d.section(f, key, nil, nil, item)
}

// globField reads a regular expression and translates it to a glob.
func (d *decoder) globField(f fields, path, key string, dst *string) {
	n, ok := f.get(key)
	if !ok {
		return
	}
	p := child(path, key)
	s, ok := d.str(n, p)
	if !ok {
		return
	}
	g, err := regexToGlob(s)
	if err != nil {
		d.errorf(n, p, "%v", err)
		return
	}
	*dst = g
}

func (d *decoder) rabbitmq(f fields, defs *Definitions) {
	vhostLimits := d.vhostLimitParameters(f)
	d.items(f, "vhosts", func(f fields, p string) {
		v := Vhost{Pos: d.itemPos(f.node, p)}
		if d.required(f, p, "name") {
			d.strField(f, p, "name", &v.Name)
			d.strField(f, p, "description", &v.Description)
			if n, ok := f.get("metadata"); ok {
				if mf, ok := d.mapping(n, child(p, "metadata"), nil, nil); ok {
					d.strField(mf, child(p, "metadata"), "description", &v.Description)
				}
			}
			v.check(d.itemReporter(f, p))
			if l, ok := vhostLimits[v.Name]; ok {
				v.Limits = l
				delete(vhostLimits, v.Name)
			}
			defs.Vhosts = append(defs.Vhosts, v)
		}
	})
	d.items(f, "users", func(f fields, p string) {
		u := User{Pos: d.itemPos(f.node, p), HashingAlgorithm: sha256Algorithm}
		if !d.required(f, p, "name", "password_hash") {
			return
		}
		d.strField(f, p, "name", &u.Name)
		d.strField(f, p, "password_hash", &u.PasswordHash)
		d.strField(f, p, "hashing_algorithm", &u.HashingAlgorithm)
		if n, ok := f.get("tags"); ok {
			if n = deref(n); n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
				for _, t := range strings.Split(n.Value, ",") {
					if t = strings.TrimSpace(t); t != "" {
						u.Tags = append(u.Tags, t)
					}
				}
			} else {
				u.Tags, _ = d.strList(n, child(p, "tags"))
			}
		}
		d.limitsField(f, p, userLimitKeys, &u.Limits.MaxConnections, &u.Limits.MaxChannels)
		u.check(d.itemReporter(f, p))
		defs.Users = append(defs.Users, u)
	})
	d.items(f, "permissions", func(f fields, p string) {
		pm := Permission{Pos: d.itemPos(f.node, p), Vhost: "/"}
		if d.required(f, p, "user", "vhost") {
			d.strField(f, p, "user", &pm.User)
			d.strField(f, p, "vhost", &pm.Vhost)
			d.globField(f, p, "configure", &pm.Configure)
			d.globField(f, p, "write", &pm.Write)
			d.globField(f, p, "read", &pm.Read)
			pm.check(d.itemReporter(f, p))
			defs.Permissions = append(defs.Permissions, pm)
		}
	})
	d.items(f, "topic_permissions", func(f fields, p string) {
		if t, ok := d.topicPermissionItem(f, p); ok {
			defs.TopicPermissions = append(defs.TopicPermissions, t)
		}
	})
	d.items(f, "exchanges", func(f fields, p string) {
		if x, ok := d.exchangeItem(f, p); ok {
			defs.Exchanges = append(defs.Exchanges, x)
		}
	})
	d.items(f, "queues", func(f fields, p string) {
		if q, ok := d.queueItem(f, p); ok {
			defs.Queues = append(defs.Queues, q)
		}
	})
	d.items(f, "bindings", func(f fields, p string) {
		if b, ok := d.bindingItem(f, p); ok {
			defs.Bindings = append(defs.Bindings, b)
		}
	})
	for _, name := range slices.Sorted(maps.Keys(vhostLimits)) { // limits of "/" or of a vhost not listed
		defs.Vhosts = append(defs.Vhosts, Vhost{Name: name, Limits: vhostLimits[name]})
	}
	d.items(f, "policies", func(f fields, p string) {
		pol := Policy{Pos: d.itemPos(f.node, p), Vhost: "/", ApplyTo: "all"}
		if !d.required(f, p, "name", "pattern", "definition") {
			return
		}
		d.strField(f, p, "name", &pol.Name)
		d.strField(f, p, "vhost", &pol.Vhost)
		d.globField(f, p, "pattern", &pol.Pattern)
		d.strField(f, p, "apply-to", &pol.ApplyTo)
		if n, ok := f.get("priority"); ok {
			if v, ok := d.intIn(n, child(p, "priority"), "priority", -1<<31, 1<<31-1); ok {
				pol.Priority = int(v)
			}
		}
		n, _ := f.get("definition")
		dp := child(p, "definition")
		df, ok := d.mapping(n, dp, nil, nil)
		if !ok {
			return
		}
		known := fields{node: df.node, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
		unsupported := false
		for k, v := range df.vals {
			if oneOf("", k, policyDefKeys...) != "" {
				unsupported = true
				d.errorf(df.keys[k], child(dp, k), "policy %q in vhost %q: key %q is not supported; Warren's policy keys are %s",
					pol.Name, pol.Vhost, k, strings.Join(policyDefKeys, ", "))
				continue
			}
			known.vals[k], known.keys[k] = v, df.keys[k]
		}
		if unsupported && len(known.vals) == 0 {
			return // the policy sets nothing Warren has; its keys are reported
		}
		d.policyDefinition(known, dp, &pol.Definition)
		pol.check(d.itemReporter(f, p))
		defs.Policies = append(defs.Policies, pol)
	})
}

// vhostLimitParameters reads the runtime parameters, where RabbitMQ exports vhost limits
// (component "vhost-limits", name "limits"), by vhost. Other components are refused.
func (d *decoder) vhostLimitParameters(f fields) map[string]VhostLimits {
	out := map[string]VhostLimits{}
	d.items(f, "parameters", func(f fields, p string) {
		var component, vhost string
		d.strField(f, p, "component", &component)
		if component != "vhost-limits" {
			d.errorf(f.node, p, "runtime parameters (federation upstreams, shovels and the like) are not supported; only vhost-limits are")
			return
		}
		if !d.required(f, p, "vhost", "value") {
			return
		}
		d.strField(f, p, "vhost", &vhost)
		n, _ := f.get("value")
		// The value is the limits mapping itself: read it as a "limits" key.
		l := VhostLimits{}
		wrap := fields{node: f.node, vals: map[string]*yaml.Node{"limits": n}, keys: map[string]*yaml.Node{"limits": f.keys["value"]}}
		d.limitsField(wrap, p, vhostLimitKeys, &l.MaxConnections, &l.MaxQueues)
		out[vhost] = l
	})
	return out
}
