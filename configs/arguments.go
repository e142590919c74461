package configs

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// unit says which strings an integer argument also accepts.
type unit int

const (
	noUnit unit = iota
	millis      // a duration ("60s"), stored as milliseconds
	size        // a size ("10MiB"), stored as bytes
)

var (
	queueArgUnits = map[string]unit{"x-message-ttl": millis, "x-expires": millis, "x-max-length-bytes": size,
		"x-consumer-timeout": millis, "x-delivery-timeout": millis}
	policyUnits = map[string]unit{"message-ttl": millis, "expires": millis, "max-length-bytes": size,
		"consumer-timeout": millis, "delivery-timeout": millis}
)

// argumentsField reads an arguments mapping. Empty arguments are nil, so that a file
// without arguments and one with arguments: {} load the same.
func (d *decoder) argumentsField(f fields, path string, units map[string]unit) map[string]any {
	n, ok := f.get("arguments")
	if !ok {
		return nil
	}
	path = child(path, "arguments")
	if n = deref(n); n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	af, ok := d.mapping(n, path, nil, nil)
	if !ok {
		return nil
	}
	args := map[string]any{}
	for k, vn := range af.vals {
		p := child(path, k)
		v, ok := d.value(vn, p)
		if !ok {
			continue
		}
		if v, ok = d.withUnit(vn, p, units[k], v); ok {
			args[k] = v
		}
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// value converts a YAML value to an argument: int64, float64, string, bool, []any or
// map[string]any. Nulls are refused: AMQP tables have a void type, but a null in a file is
// almost always a value left out by mistake.
func (d *decoder) value(n *yaml.Node, path string) (any, bool) {
	n = deref(n)
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			v, ok2 := d.value(item, index(path, i))
			ok = ok && ok2
			out = append(out, v)
		}
		return out, ok
	case yaml.MappingNode:
		f, ok := d.mapping(n, path, nil, nil)
		out := make(map[string]any, len(f.vals))
		for k, vn := range f.vals {
			v, ok2 := d.value(vn, child(path, k))
			ok = ok && ok2
			out[k] = v
		}
		return out, ok
	}
	switch n.Tag {
	case "!!int":
		return d.integer(n, path)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			d.expected(n, path, "a number")
			return nil, false
		}
		if math.IsNaN(f) {
			d.errorf(n, path, "NaN is not allowed")
			return nil, false
		}
		return f, true
	case "!!bool":
		return d.boolean(n, path)
	case "!!str", "!!timestamp":
		return n.Value, true
	case "!!null":
		d.errorf(n, path, "null is not allowed; remove the key or give it a value")
		return nil, false
	}
	d.errorf(n, path, "values tagged %s are not supported", n.Tag)
	return nil, false
}

// withUnit converts a duration or size string to its integer when the key takes one.
func (d *decoder) withUnit(n *yaml.Node, path string, u unit, v any) (any, bool) {
	s, isString := v.(string)
	if !isString || u == noUnit {
		return v, true
	}
	switch u {
	case millis:
		dur, err := ParseDuration(s)
		if err != nil {
			d.errorf(n, path, "%v", err)
			return nil, false
		}
		if dur%Duration(time.Millisecond) != 0 {
			d.errorf(n, path, "duration %q is not a whole number of milliseconds", s)
			return nil, false
		}
		return int64(time.Duration(dur) / time.Millisecond), true
	default:
		b, err := ParseByteSize(s)
		if err != nil {
			d.errorf(n, path, "%v", err)
			return nil, false
		}
		return int64(b), true
	}
}

// describeValue names an argument value for "expected X, got Y", as describe does for
// YAML nodes.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}
