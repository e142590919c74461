package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks one file's yaml.Node tree, collecting every problem it finds.
type decoder struct {
	file string
	errs ErrorList
	// snake says keys are RabbitMQ's JSON spelling (auto_delete, routing_key): see key.
	snake bool
}

// key is a kebab-case schema key as this decoder's input spells it.
func (d *decoder) key(k string) string {
	if d.snake {
		return strings.ReplaceAll(k, "-", "_")
	}
	return k
}

// parseYAML reads the single document in data. An empty file is an empty mapping.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, ErrorList{syntaxError(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{Pos: Pos{File: file, Line: extra.Line, Col: extra.Column},
			Msg: "a file holds one YAML document, but a second one starts here"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, ErrorList{syntaxError(file, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}, nil
	}
	root := doc.Content[0]
	if err := checkAliases(file, root); err != nil {
		return nil, ErrorList{err}
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}, nil
	}
	return root, nil
}

// maxExpanded bounds the nodes a document may hold once its aliases are expanded, against
// "billion laughs" documents.
const maxExpanded = 1 << 20

// checkAliases refuses aliases that refer to a node containing them (which would make the
// tree infinite) and documents whose aliases expand to more than maxExpanded nodes.
func checkAliases(file string, root *yaml.Node) *Error {
	const inProgress = -1
	sizes := map[*yaml.Node]int{}
	var problem *Error
	var size func(n *yaml.Node) int
	size = func(n *yaml.Node) int {
		if problem != nil {
			return 0
		}
		switch s, seen := sizes[n]; {
		case seen && s == inProgress:
			problem = &Error{Pos: Pos{File: file, Line: n.Line, Col: n.Column}, Msg: "an alias refers to a node that contains it"}
			return 0
		case seen:
			return s
		}
		sizes[n] = inProgress
		total := 1
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			if sizes[n.Alias] == inProgress {
				problem = &Error{Pos: Pos{File: file, Line: n.Line, Col: n.Column}, Msg: fmt.Sprintf("alias *%s refers to a node that contains it", n.Value)}
				return 0
			}
			total += size(n.Alias)
		}
		for _, c := range n.Content {
			total += size(c)
			if total > maxExpanded {
				break
			}
		}
		if total > maxExpanded && problem == nil {
			problem = &Error{Pos: Pos{File: file, Line: n.Line, Col: n.Column}, Msg: fmt.Sprintf("the document expands to more than %d nodes through its aliases", maxExpanded)}
		}
		sizes[n] = total
		return total
	}
	size(root)
	return problem
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// parserProblems start yaml.v3's parser (not scanner) errors, whose line it reports
// 0-based.
var parserProblems = []string{"did not find expected", "found duplicate %", "found incompatible YAML", "found undefined tag"}

// syntaxError turns yaml.v3's "yaml: line 3: did not find expected key" into an Error at
// that line (yaml.v3 does not report the column).
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	pos := Pos{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		for _, p := range parserProblems {
			if strings.HasPrefix(msg, p) {
				pos.Line++
				break
			}
		}
	}
	return &Error{Pos: pos, Msg: "syntax error: " + msg}
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

// itemPos is the position of the list item at path.
func (d *decoder) itemPos(n *yaml.Node, path string) Pos {
	p := d.pos(n)
	p.Item = path
	return p
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// child is path.key, or key at the root.
func child(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// deref follows aliases (*anchor) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// describe names what a node holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func (d *decoder) expected(n *yaml.Node, path, what string) {
	d.errorf(n, path, "expected %s, got %s", what, describe(n))
}

// fields is a mapping's values by key, with the key nodes for positions.
type fields struct {
	node *yaml.Node
	vals map[string]*yaml.Node
	keys map[string]*yaml.Node
	// merged marks the keys that come from a merge key (<<: *anchor), which the mapping's
	// own keys override.
	merged map[string]bool
}

func (f fields) get(key string) (*yaml.Node, bool) {
	n, ok := f.vals[key]
	return n, ok
}

// mapping checks that n is a mapping whose keys are all in keys (listed in schema order in
// the error), without duplicates, and returns its fields. Merge keys (<<: *anchor) are
// followed. special gives the message for a key that is refused for a known reason.
func (d *decoder) mapping(n *yaml.Node, path string, keys []string, special map[string]string) (fields, bool) {
	n = deref(n)
	f := fields{node: n, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, merged: map[string]bool{}}
	if n.Kind != yaml.MappingNode {
		d.expected(n, path, "a mapping")
		return f, false
	}
	d.collect(n, path, keys, special, f, false)
	return f, true
}

func (d *decoder) collect(n *yaml.Node, path string, keys []string, special map[string]string, f fields, merged bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			d.merge(v, path, keys, special, f)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "expected a string key, got %s", describe(k))
			continue
		}
		name := k.Value
		if prev, dup := f.keys[name]; dup {
			switch {
			case merged: // a key set in the mapping itself wins over a merged one
				continue
			case !f.merged[name]:
				d.errorf(k, child(path, name), "key %q is already set at %s", name, d.pos(prev))
				continue
			}
		}
		if merged {
			f.merged[name] = true
		} else {
			delete(f.merged, name)
		}
		if msg, ok := special[name]; ok {
			d.errorf(k, child(path, name), "%s", msg)
			continue
		}
		known := false
		for _, key := range keys {
			known = known || key == name
		}
		if keys != nil && !known {
			d.errorf(k, path, "unknown key %q; expected one of: %s", name, strings.Join(keys, ", "))
			continue
		}
		f.keys[name], f.vals[name] = k, v
	}
}

// merge adds the fields of a merge key's mapping (or list of mappings) that are not set yet.
func (d *decoder) merge(v *yaml.Node, path string, keys []string, special map[string]string, f fields) {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		d.collect(v, path, keys, special, f, true)
	case yaml.SequenceNode:
		for _, m := range v.Content {
			if m = deref(m); m.Kind != yaml.MappingNode {
				d.expected(m, child(path, "<<"), "a mapping")
				continue
			}
			d.collect(m, path, keys, special, f, true)
		}
	default:
		d.expected(v, child(path, "<<"), "a mapping")
	}
}

// required reports keys missing from f, at the mapping's position.
func (d *decoder) required(f fields, path string, keys ...string) bool {
	ok := true
	for _, k := range keys {
		if _, set := f.vals[k]; !set {
			d.errorf(f.node, path, "missing required key %q", k)
			ok = false
		}
	}
	return ok
}

func (d *decoder) list(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.expected(n, path, "a list")
		return nil, false
	}
	return n.Content, true
}

// str reads a string. Plain numbers are taken as their text (a routing key 42); booleans
// and nulls are refused, since they are more often mistakes than names.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
		d.expected(n, path, "a string")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) strList(n *yaml.Node, path string) ([]string, bool) {
	items, ok := d.list(n, path)
	if !ok {
		return nil, false
	}
	var out []string
	for i, item := range items {
		if s, ok2 := d.str(item, index(path, i)); ok2 {
			out = append(out, s)
		} else {
			ok = false
		}
	}
	return out, ok
}

func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	n = deref(n)
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		d.expected(n, path, "an integer")
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	n = deref(n)
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		d.expected(n, path, "a boolean")
		return false, false
	}
	return v, true
}

// intIn reads an integer in [lo, hi].
func (d *decoder) intIn(n *yaml.Node, path, name string, lo, hi int64) (int64, bool) {
	v, ok := d.integer(n, path)
	if !ok {
		return 0, false
	}
	if msg := rangeMsg(name, v, lo, hi); msg != "" {
		d.errorf(n, path, "%s", msg)
		return 0, false
	}
	return v, true
}

// rangeMsg is the message for v outside [lo, hi], or "".
func rangeMsg(name string, v, lo, hi int64) string {
	switch {
	case v < lo:
		return fmt.Sprintf("%s %d is below the minimum of %d", name, v, lo)
	case v > hi:
		return fmt.Sprintf("%s %d is above the maximum of %d", name, v, hi)
	}
	return ""
}

// oneOf is the message for a value not in choices, or "".
func oneOf(what, v string, choices ...string) string {
	for _, c := range choices {
		if v == c {
			return ""
		}
	}
	return fmt.Sprintf("%s %q is not one of %s", what, v, strings.Join(choices, ", "))
}

func (d *decoder) enum(n *yaml.Node, path, what string, choices ...string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	if msg := oneOf(what, s, choices...); msg != "" {
		d.errorf(n, path, "%s", msg)
		return "", false
	}
	return s, true
}

// duration reads a Duration: a Go duration string ("1m30s") or an integer of seconds.
func (d *decoder) duration(n *yaml.Node, path string) (Duration, bool) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		s, ok := d.integer(n, path)
		if !ok {
			return 0, false
		}
		if s < 0 || s > math.MaxInt64/int64(time.Second) {
			d.errorf(n, path, "duration %d is out of range", s)
			return 0, false
		}
		return Duration(time.Duration(s) * time.Second), true
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.expected(n, path, "a duration")
		return 0, false
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return 0, false
	}
	return v, true
}

// byteSize reads a ByteSize: an integer of bytes or a string with a unit ("64MiB").
func (d *decoder) byteSize(n *yaml.Node, path string) (ByteSize, bool) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, ok := d.integer(n, path)
		return ByteSize(v), ok
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.expected(n, path, "a size")
		return 0, false
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return 0, false
	}
	return v, true
}
